fn main() {
    std::process::exit(fgssl::cli::main());
}
