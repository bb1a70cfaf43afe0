//! Loader tests: every data set format on fixtures written here in its exact official layout, traps included
//! (licence files in ISIC 2018 input folders, flattened ground truth, superpixel PNGs and metadata CSVs in ISIC 2017
//! folders, APTOS ids without extension, stored and deflated npz, grey arrays, swapped CSV columns), auto-detection,
//! and one test per bad input. Opt-in runs on real data: `FGSSL_ISIC2018`, `FGSSL_ISIC2017`, `FGSSL_APTOS`,
//! `FGSSL_HAM10000`, `FGSSL_MEDMNIST` point at user-supplied roots.

mod common_data;
mod support;

use std::path::Path;
use std::process::Command;

use common_data::*;
use fgssl::data::detect::detect;
use fgssl::data::{load, Dataset, DatasetKind, ImageSource, Isic2017Task, LoadOptions, Split};
use fgssl::Error;

fn load_auto(root: &Path) -> Dataset {
    load(root, None, &LoadOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", root.display()))
}

fn err_of(root: &Path, kind: Option<DatasetKind>, opts: &LoadOptions) -> String {
    match load(root, kind, opts) {
        Ok(ds) => panic!("{}: expected an error, loaded {} samples", root.display(), ds.samples.len()),
        Err(e) => e.to_string(),
    }
}

/// `(id, label name or "-", split)` of every sample, sorted by id.
fn summary(ds: &Dataset) -> Vec<(String, String, Option<Split>)> {
    let mut v: Vec<_> = ds
        .samples
        .iter()
        .map(|s| (s.id.clone(), s.label.map(|l| ds.class_names[l].clone()).unwrap_or_else(|| "-".into()), s.official_split))
        .collect();
    v.sort();
    v
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---- ISIC 2018 Task 3 ------------------------------------------------------------------------------------------

const ISIC18_HEADER: &str = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC";

/// A one-hot row in the official column order.
fn isic18_row(id: &str, class: usize) -> String {
    let mut cols = ["0.0"; 7];
    cols[class] = "1.0";
    format!("{id},{}", cols.join(","))
}

/// Writes one split: JPEGs plus licence/attribution text files in the input folder, and the ground truth nested
/// in its own folder or flattened next to the input folder.
fn isic18_split(root: &Path, split: &str, rows: &[(&str, usize)], flattened: bool) {
    let input = root.join(format!("ISIC2018_Task3_{split}_Input"));
    for (i, (id, _)) in rows.iter().enumerate() {
        write_jpeg(&input.join(format!("{id}.jpg")), (i as u8).wrapping_mul(13));
    }
    write_text(&input.join("ATTRIBUTION.txt"), "images (c) ISIC, CC BY-NC\n");
    write_text(&input.join("LICENSE.txt"), "CC BY-NC 4.0\n");
    let mut csv = format!("{ISIC18_HEADER}\n");
    for (id, c) in rows {
        csv += &isic18_row(id, *c);
        csv.push('\n');
    }
    let name = format!("ISIC2018_Task3_{split}_GroundTruth");
    let gt = if flattened { root.join(format!("{name}.csv")) } else { root.join(&name).join(format!("{name}.csv")) };
    write_text(&gt, &csv);
}

#[test]
fn isic2018_official_layout() {
    let dir = TempDir::new("isic18");
    let root = dir.path();
    isic18_split(root, "Training", &[("ISIC_0024306", 1), ("ISIC_0024307", 0), ("ISIC_0024308", 6), ("ISIC_0024309", 1)], false);
    isic18_split(root, "Validation", &[("ISIC_0034321", 2)], false);
    // Test ground truth with its columns in another order: mapped by name, not position.
    let input = root.join("ISIC2018_Task3_Test_Input");
    write_jpeg(&input.join("ISIC_0034524.jpg"), 1);
    write_jpeg(&input.join("ISIC_0034525.jpg"), 2);
    write_text(&input.join("LICENSE.txt"), "CC BY-NC 4.0\n");
    write_text(
        &root.join("ISIC2018_Task3_Test_GroundTruth/ISIC2018_Task3_Test_GroundTruth.csv"),
        "image,VASC,DF,BKL,AKIEC,BCC,NV,MEL\nISIC_0034524,0.0,1.0,0.0,0.0,0.0,0.0,0.0\nISIC_0034525,0.0,0.0,0.0,0.0,0.0,0.0,1.0\n",
    );
    write_text(
        &root.join("ISIC2018_Task3_Training_LesionGroupings.csv"),
        "image,lesion_id,diagnosis_confirm_type\nISIC_0024306,HAM_0000118,histopathology\nISIC_0024307,HAM_0000118,histopathology\n\
         ISIC_0024308,HAM_0002730,follow_up\nISIC_0024309,HAM_0001466,consensus\n",
    );

    assert_eq!(detect(root).unwrap().kind, DatasetKind::Isic2018);
    let ds = load_auto(root);
    assert_eq!(ds.format, "isic2018");
    assert_eq!(ds.class_names, names(&["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]));
    let t = |id: &str, c: &str, s| (id.to_string(), c.to_string(), Some(s));
    assert_eq!(
        summary(&ds),
        vec![
            t("ISIC_0024306", "NV", Split::Train),
            t("ISIC_0024307", "MEL", Split::Train),
            t("ISIC_0024308", "VASC", Split::Train),
            t("ISIC_0024309", "NV", Split::Train),
            t("ISIC_0034321", "BCC", Split::Val),
            t("ISIC_0034524", "DF", Split::Test),
            t("ISIC_0034525", "MEL", Split::Test),
        ]
    );
    // Lesion groups on the training images; none of the licence files became a sample.
    let group = |id: &str| ds.samples.iter().find(|s| s.id == id).unwrap().group.clone();
    assert_eq!(group("ISIC_0024306").as_deref(), Some("HAM_0000118"));
    assert_eq!(group("ISIC_0024307").as_deref(), Some("HAM_0000118"));
    assert_eq!(group("ISIC_0034321"), None);
    assert!(ds.samples.iter().all(|s| matches!(&s.source, ImageSource::File(p) if p.extension().unwrap() == "jpg")));
    let counts = ds.class_counts();
    assert_eq!(counts[0], [1, 2, 0, 0, 0, 0, 1]);
    assert_eq!(counts[2], [1, 0, 0, 0, 0, 1, 0]);
    // The pixels decode.
    let (w, h, px) = ds.load_rgb8(&ds.samples[0]).unwrap();
    assert_eq!((w, h, px.len()), (8, 8, 8 * 8 * 3));
}

#[test]
fn isic2018_flattened_ground_truth_and_unlabelled_test() {
    let dir = TempDir::new("isic18flat");
    let root = dir.path();
    isic18_split(root, "Training", &[("ISIC_0000001", 3), ("ISIC_0000002", 4)], true);
    isic18_split(root, "Validation", &[("ISIC_0000003", 5)], true);
    // A test input folder without ground truth: unlabelled test images.
    write_jpeg(&root.join("ISIC2018_Task3_Test_Input/ISIC_0000004.jpg"), 9);
    write_text(&root.join("ISIC2018_Task3_Test_Input/LICENSE.txt"), "x");
    let d = detect(root).unwrap();
    assert_eq!((d.kind, d.marker.as_str()), (DatasetKind::Isic2018, "ISIC2018_Task3_Training_GroundTruth.csv"));
    let ds = load_auto(root);
    let t = |id: &str, c: &str, s| (id.to_string(), c.to_string(), Some(s));
    assert_eq!(
        summary(&ds),
        vec![
            t("ISIC_0000001", "AKIEC", Split::Train),
            t("ISIC_0000002", "BKL", Split::Train),
            t("ISIC_0000003", "DF", Split::Val),
            t("ISIC_0000004", "-", Split::Test),
        ]
    );
    assert!(ds.notes.iter().any(|n| n.contains("LesionGroupings") && n.contains("not grouped")), "{:?}", ds.notes);
}

#[test]
fn isic2018_complete_split_is_checked_against_published_counts() {
    let dir = TempDir::new("isic18counts");
    let root = dir.path();
    let published = [21, 123, 15, 8, 22, 1, 3];
    let mut rows: Vec<(String, usize)> = Vec::new();
    for (class, &n) in published.iter().enumerate() {
        rows.extend((0..n).map(|i| (format!("ISIC_{:07}", class * 1000 + i), class)));
    }
    let ids: Vec<(&str, usize)> = rows.iter().map(|(id, c)| (id.as_str(), *c)).collect();
    isic18_split(root, "Training", &[("ISIC_9000000", 0)], false);
    isic18_split(root, "Validation", &ids, false);
    let ds = load_auto(root);
    assert!(ds.notes.iter().any(|n| n.contains("Validation: class counts match the published ones")), "{:?}", ds.notes);
    // One NV image relabelled BCC: same total, different counts.
    let mut swapped = ids.clone();
    swapped.iter_mut().find(|r| r.1 == 1).unwrap().1 = 2;
    isic18_split(root, "Validation", &swapped, false);
    let ds = load_auto(root);
    let note = ds.notes.iter().find(|n| n.starts_with("Validation:")).unwrap();
    assert!(note.contains("[21, 122, 16, 8, 22, 1, 3] differ from the published [21, 123, 15, 8, 22, 1, 3]"), "{note}");
}

#[test]
fn isic2018_bad_rows_name_file_and_line() {
    let dir = TempDir::new("isic18bad");
    let root = dir.path();
    isic18_split(root, "Training", &[("ISIC_0000001", 0), ("ISIC_0000002", 1)], false);
    let gt = root.join("ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv");
    let ok = format!("{ISIC18_HEADER}\n{}\n", isic18_row("ISIC_0000001", 0));
    let opts = LoadOptions::default();
    let kind = Some(DatasetKind::Isic2018);

    write_text(&gt, &format!("{ok}ISIC_0000002,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n"));
    let e = err_of(root, kind, &opts);
    assert!(e.contains("ISIC2018_Task3_Training_GroundTruth.csv:3") && e.contains("no column equal to 1.0"), "{e}");

    write_text(&gt, &format!("{ok}ISIC_0000002,1.0,1.0,0.0,0.0,0.0,0.0,0.0\n"));
    let e = err_of(root, kind, &opts);
    assert!(e.contains("GroundTruth.csv:3") && e.contains("2 columns equal to 1.0 (MEL, NV)"), "{e}");

    write_text(&gt, &format!("{ok}ISIC_0000002,0.5,0.5,0.0,0.0,0.0,0.0,0.0\n"));
    assert!(err_of(root, kind, &opts).contains("not one-hot: MEL=0.5"));

    write_text(&gt, &format!("{ok}{}\n", isic18_row("ISIC_0000001", 1)));
    let e = err_of(root, kind, &opts);
    assert!(e.contains("GroundTruth.csv:3") && e.contains("duplicate id 'ISIC_0000001'") && e.contains(":2"), "{e}");

    // A header without a class column.
    write_text(&gt, "image,MEL,NV,BCC,AKIEC,BKL,DF\nISIC_0000001,1.0,0.0,0.0,0.0,0.0,0.0\n");
    assert!(err_of(root, kind, &opts).contains("no column 'VASC'"));

    // Seven listed images that do not exist: the first five are named, and the count.
    let mut csv = ok.clone();
    for i in 0..7 {
        csv += &isic18_row(&format!("ISIC_999000{i}"), 2);
        csv.push('\n');
    }
    write_text(&gt, &csv);
    let e = err_of(root, kind, &opts);
    assert!(e.contains("7 image(s) listed") && e.contains("ISIC_9990000") && e.contains("ISIC_9990004") && e.contains("and 2 more"), "{e}");
    assert!(!e.contains("ISIC_9990005"), "{e}");
    assert!(e.contains("ISIC2018_Task3_Training_Input"), "{e}");

    // Only a header: an empty data set.
    write_text(&gt, &format!("{ISIC18_HEADER}\n"));
    assert!(err_of(root, kind, &opts).contains("empty"));

    // The ground truth missing altogether.
    std::fs::remove_file(&gt).unwrap();
    let e = err_of(root, kind, &opts);
    assert!(e.contains("missing CSV") && e.contains("ISIC2018_Task3_Training_GroundTruth.csv"), "{e}");
}

// ---- HAM10000 -------------------------------------------------------------------------------------------------

#[test]
fn ham10000_metadata_variant() {
    let dir = TempDir::new("ham");
    let root = dir.path();
    write_jpeg(&root.join("HAM10000_images_part_1/ISIC_0027419.jpg"), 1);
    write_jpeg(&root.join("HAM10000_images_part_1/ISIC_0025030.jpg"), 2);
    write_jpeg(&root.join("HAM10000_images_part_2/ISIC_0031633.jpg"), 3);
    write_text(
        &root.join("HAM10000_metadata.csv"),
        "lesion_id,image_id,dx,dx_type,age,sex,localization,dataset\n\
         HAM_0000118,ISIC_0027419,bkl,histo,80.0,male,scalp,vidir_modern\n\
         HAM_0000118,ISIC_0025030,bkl,histo,80.0,male,scalp,vidir_modern\n\
         HAM_0002730,ISIC_0031633,mel,histo,75.0,male,ear,vidir_modern\n",
    );
    assert_eq!(detect(root).unwrap().kind, DatasetKind::Ham10000);
    let ds = load_auto(root);
    assert_eq!(ds.class_names, names(&["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]));
    assert_eq!(
        summary(&ds),
        vec![("ISIC_0025030".into(), "BKL".into(), None), ("ISIC_0027419".into(), "BKL".into(), None), ("ISIC_0031633".into(), "MEL".into(), None),]
    );
    let groups: Vec<_> = ds.samples.iter().map(|s| s.group.clone().unwrap()).collect();
    assert_eq!(groups, ["HAM_0000118", "HAM_0000118", "HAM_0002730"]);

    // An unknown dx names the row.
    write_text(&root.join("HAM10000_metadata.csv"), "lesion_id,image_id,dx\nHAM_1,ISIC_0027419,bkl\nHAM_2,ISIC_0025030,melanoma\n");
    let e = err_of(root, None, &LoadOptions::default());
    assert!(e.contains("HAM10000_metadata.csv:3") && e.contains("unknown dx 'melanoma'"), "{e}");
}

// ---- ISIC 2017 Part 3 -----------------------------------------------------------------------------------------

/// One split: JPEGs, their superpixel PNGs and the metadata CSV in the data folder, ground truth next to it.
fn isic17_split(root: &Path, split: &str, rows: &[(&str, u8, u8)]) {
    let data = root.join(format!("ISIC-2017_{split}_Data"));
    let mut meta = "image_id,age_approximate,sex\n".to_string();
    let mut gt = "image_id,melanoma,seborrheic_keratosis\n".to_string();
    for (i, (id, mel, sk)) in rows.iter().enumerate() {
        write_jpeg(&data.join(format!("{id}.jpg")), i as u8);
        write_png(&data.join(format!("{id}_superpixels.png")), 200);
        meta += &format!("{id},unknown,unknown\n");
        gt += &format!("{id},{mel}.0,{sk}.0\n");
    }
    write_text(&data.join(format!("ISIC-2017_{split}_Data_metadata.csv")), &meta);
    write_text(&root.join(format!("ISIC-2017_{split}_Part3_GroundTruth.csv")), &gt);
}

#[test]
fn isic2017_part3_tasks_and_traps() {
    let dir = TempDir::new("isic17");
    let root = dir.path();
    isic17_split(root, "Training", &[("ISIC_0000000", 0, 0), ("ISIC_0000001", 1, 0), ("ISIC_0000002", 0, 1)]);
    isic17_split(root, "Validation", &[("ISIC_0001769", 0, 1)]);
    isic17_split(root, "Test_v2", &[("ISIC_0012086", 1, 0), ("ISIC_0012087", 0, 0)]);
    // An extra image in the test folder that the ground truth does not list is ignored (and noted).
    write_jpeg(&root.join("ISIC-2017_Test_v2_Data/ISIC_0019999.jpg"), 5);

    assert_eq!(detect(root).unwrap().kind, DatasetKind::Isic2017);
    let ds = load_auto(root);
    assert_eq!(ds.class_names, names(&["not_seborrheic_keratosis", "seborrheic_keratosis"]), "default task: sk");
    assert_eq!(ds.samples.len(), 6, "no superpixel or metadata file is a sample");
    assert!(ds.samples.iter().all(|s| matches!(&s.source, ImageSource::File(p) if !p.to_string_lossy().contains("superpixels"))));
    let t = |id: &str, c: &str, s| (id.to_string(), c.to_string(), Some(s));
    assert_eq!(
        summary(&ds),
        vec![
            t("ISIC_0000000", "not_seborrheic_keratosis", Split::Train),
            t("ISIC_0000001", "not_seborrheic_keratosis", Split::Train),
            t("ISIC_0000002", "seborrheic_keratosis", Split::Train),
            t("ISIC_0001769", "seborrheic_keratosis", Split::Val),
            t("ISIC_0012086", "not_seborrheic_keratosis", Split::Test),
            t("ISIC_0012087", "not_seborrheic_keratosis", Split::Test),
        ]
    );
    let note = ds.notes.iter().find(|n| n.contains("not in the ground truth")).expect("a note about the unlisted image");
    assert!(note.contains("1 image(s)") && note.contains("ISIC_0019999.jpg"), "{note}");

    let opts = LoadOptions { isic2017_task: Isic2017Task::Melanoma, ..Default::default() };
    let ds = load(root, None, &opts).unwrap();
    assert_eq!(ds.class_names, names(&["not_melanoma", "melanoma"]));
    let mel: Vec<_> = summary(&ds).into_iter().filter(|r| r.1 == "melanoma").map(|r| r.0).collect();
    assert_eq!(mel, ["ISIC_0000001", "ISIC_0012086"]);

    let opts = LoadOptions { isic2017_task: Isic2017Task::ThreeClass, ..Default::default() };
    let ds = load(root, Some(DatasetKind::Isic2017), &opts).unwrap();
    assert_eq!(ds.class_names, names(&["melanoma", "seborrheic_keratosis", "nevus"]));
    let labels: Vec<_> = summary(&ds).into_iter().map(|r| r.1).collect();
    assert_eq!(labels, ["nevus", "melanoma", "seborrheic_keratosis", "seborrheic_keratosis", "melanoma", "nevus"]);

    // Both flags set: not a valid Part 3 row.
    write_text(&root.join("ISIC-2017_Validation_Part3_GroundTruth.csv"), "image_id,melanoma,seborrheic_keratosis\nISIC_0001769,1.0,1.0\n");
    let e = err_of(root, None, &LoadOptions::default());
    assert!(e.contains("ISIC-2017_Validation_Part3_GroundTruth.csv:2") && e.contains("both melanoma and seborrheic_keratosis"), "{e}");
    write_text(&root.join("ISIC-2017_Validation_Part3_GroundTruth.csv"), "image_id,melanoma,seborrheic_keratosis\nISIC_0001769,0.0,yes\n");
    assert!(err_of(root, None, &LoadOptions::default()).contains("seborrheic_keratosis='yes'"));
}

#[test]
fn isic2017_task_names_parse() {
    assert_eq!("sk".parse::<Isic2017Task>().unwrap(), Isic2017Task::SeborrheicKeratosis);
    assert_eq!("seborrheic_keratosis".parse::<Isic2017Task>().unwrap(), Isic2017Task::SeborrheicKeratosis);
    assert_eq!("melanoma".parse::<Isic2017Task>().unwrap(), Isic2017Task::Melanoma);
    assert_eq!("3class".parse::<Isic2017Task>().unwrap(), Isic2017Task::ThreeClass);
    assert_eq!(Isic2017Task::default(), Isic2017Task::SeborrheicKeratosis);
    assert!("nevus".parse::<Isic2017Task>().is_err());
    for t in [Isic2017Task::Melanoma, Isic2017Task::SeborrheicKeratosis, Isic2017Task::ThreeClass] {
        assert_eq!(t.to_string().parse::<Isic2017Task>().unwrap(), t);
    }
}

// ---- APTOS 2019 -----------------------------------------------------------------------------------------------

#[test]
fn aptos2019_ids_without_extension_and_unlabelled_test() {
    let dir = TempDir::new("aptos");
    let root = dir.path();
    for (i, id) in ["000c1434d8d7", "001639a390f0", "0024cdab0c1e"].iter().enumerate() {
        write_png(&root.join(format!("train_images/{id}.png")), i as u8);
    }
    write_png(&root.join("test_images/0005cfc8afb6.png"), 7);
    // The third id carries an extension, as re-packaged copies do.
    write_text(&root.join("train.csv"), "id_code,diagnosis\n000c1434d8d7,2\n001639a390f0,4\n0024cdab0c1e.png,0\n");
    write_text(&root.join("test.csv"), "id_code\n0005cfc8afb6\n");
    write_text(&root.join("sample_submission.csv"), "id_code,diagnosis\n0005cfc8afb6,0\n");

    let d = detect(root).unwrap();
    assert_eq!(d.kind, DatasetKind::Aptos2019);
    let ds = load_auto(root);
    assert_eq!(ds.class_names, names(&["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"]));
    assert_eq!(
        summary(&ds),
        vec![
            ("0005cfc8afb6".into(), "-".into(), None),
            ("000c1434d8d7".into(), "Moderate".into(), None),
            ("001639a390f0".into(), "Proliferative DR".into(), None),
            ("0024cdab0c1e".into(), "No DR".into(), None),
        ]
    );
    assert_eq!(ds.load_rgb8(&ds.samples[0]).unwrap().0, 6);

    // A grade outside 0-4 names the row; a missing image names the id and the folder.
    write_text(&root.join("train.csv"), "id_code,diagnosis\n000c1434d8d7,7\n");
    let e = err_of(root, None, &LoadOptions::default());
    assert!(e.contains("train.csv:2") && e.contains("unknown diagnosis '7'"), "{e}");
    write_text(&root.join("train.csv"), "id_code,diagnosis\nffffffffffff,1\n");
    let e = err_of(root, None, &LoadOptions::default());
    assert!(e.contains("ffffffffffff (train.csv:2)") && e.contains("train_images"), "{e}");
    // No train.csv at all, with the format given.
    std::fs::remove_file(root.join("train.csv")).unwrap();
    let e = err_of(root, Some(DatasetKind::Aptos2019), &LoadOptions::default());
    assert!(e.contains("train.csv") && e.contains("missing CSV"), "{e}");
}

// ---- MedMNIST -------------------------------------------------------------------------------------------------

/// A DermaMNIST-like file: RGB `(N,H,W,3)` images, `(N,1)` uint8 labels.
fn derma_members(n_train: usize) -> Vec<(&'static str, Vec<u8>)> {
    let img = |n: usize, seed: u8| npy_u8(&[n, 2, 3, 3], &(0..n * 18).map(|i| (i as u8).wrapping_mul(3).wrapping_add(seed)).collect::<Vec<_>>());
    let train_labels: Vec<u8> = (0..n_train).map(|i| (i % 7) as u8).collect();
    vec![
        ("train_images", img(n_train, 0)),
        ("train_labels", npy_u8(&[n_train, 1], &train_labels)),
        ("val_images", img(1, 50)),
        ("val_labels", npy_u8(&[1, 1], &[4])),
        ("test_images", img(2, 100)),
        ("test_labels", npy_u8(&[2, 1], &[5, 0])),
    ]
}

#[test]
fn medmnist_stored_rgb_npz() {
    let dir = TempDir::new("medmnist");
    write_npz(&dir.join("dermamnist_64.npz"), &derma_members(8), false);
    let d = detect(dir.path()).unwrap();
    assert_eq!((d.kind, d.marker.as_str()), (DatasetKind::MedMnist, "dermamnist_64.npz"));
    let ds = load_auto(dir.path());
    assert_eq!(ds.format, "medmnist");
    // Label-order trap: DermaMNIST's own (alphabetical dx) order, named so that comparisons go by name.
    assert_eq!(ds.class_names, names(&["AKIEC", "BCC", "BKL", "DF", "MEL", "NV", "VASC"]));
    assert_eq!(ds.samples.len(), 11);
    let val = ds.samples.iter().find(|s| s.official_split == Some(Split::Val)).unwrap();
    assert_eq!((val.id.as_str(), ds.class_names[val.label.unwrap()].as_str()), ("val/0", "MEL"));
    assert_eq!(val.source, ImageSource::Array { key: "val_images".into(), index: 0 });
    let test: Vec<_> =
        ds.samples.iter().filter(|s| s.official_split == Some(Split::Test)).map(|s| ds.class_names[s.label.unwrap()].as_str()).collect();
    assert_eq!(test, ["NV", "AKIEC"]);
    // Pixels of test image 1 come from memory: bytes 18..36 of the test array.
    let s = ds.samples.iter().find(|s| s.id == "test/1").unwrap();
    let expect: Vec<u8> = (18..36).map(|i| (i as u8).wrapping_mul(3).wrapping_add(100)).collect();
    assert_eq!(ds.load_rgb8(s).unwrap(), (3, 2, expect));
    assert_eq!(ds.class_counts()[0], [2, 1, 1, 1, 1, 1, 1]);
}

#[test]
fn medmnist_deflated_grey_npz() {
    let dir = TempDir::new("medmnist-grey");
    // PneumoniaMNIST-like: grey (N,H,W) images, (N,) int64 labels, every member deflated.
    let path = dir.join("pneumoniamnist.npz");
    let members = vec![
        ("train_images", npy_u8(&[3, 2, 2], &[0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110])),
        ("train_labels", npy_i64(&[3], &[0, 1, 1])),
        ("val_images", npy_u8(&[1, 2, 2], &[1, 2, 3, 4])),
        ("val_labels", npy_i64(&[1], &[0])),
        ("test_images", npy_u8(&[1, 2, 2], &[5, 6, 7, 8])),
        ("test_labels", npy_i64(&[1], &[1])),
    ];
    write_npz(&path, &members, true);
    // The root may be the file itself.
    let ds = load_auto(&path);
    assert_eq!(ds.class_names, names(&["normal", "pneumonia"]));
    assert_eq!(ds.samples.len(), 5);
    let s = &ds.samples[1];
    assert_eq!((s.id.as_str(), s.label), ("train/1", Some(1)));
    assert_eq!(ds.load_rgb8(s).unwrap(), (2, 2, vec![40, 40, 40, 50, 50, 50, 60, 60, 60, 70, 70, 70]));
}

#[test]
fn medmnist_choice_and_bad_files() {
    let dir = TempDir::new("medmnist-bad");
    let root = dir.path();
    write_npz(&dir.join("dermamnist.npz"), &derma_members(3), true);
    write_npz(&dir.join("bloodmnist.npz"), &derma_members(3), false);
    let e = err_of(root, None, &LoadOptions::default());
    assert!(e.contains("several .npz files") && e.contains("bloodmnist.npz") && e.contains("dermamnist.npz"), "{e}");
    let opts = LoadOptions { medmnist_file: Some("bloodmnist".into()), ..Default::default() };
    let ds = load(root, None, &opts).unwrap();
    assert_eq!(ds.class_names[0], "basophil");
    assert_eq!(ds.class_names.len(), 8);

    // Multi-label (ChestMNIST) labels.
    let bad = TempDir::new("medmnist-chest");
    write_npz(&bad.join("chestmnist.npz"), &[("train_images", npy_u8(&[1, 2, 2], &[0; 4])), ("train_labels", npy_u8(&[1, 14], &[0; 14]))], false);
    assert!(err_of(bad.path(), None, &LoadOptions::default()).contains("multi-label"));
    // A label beyond the flag's classes.
    std::fs::remove_file(bad.join("chestmnist.npz")).unwrap();
    write_npz(&bad.join("breastmnist.npz"), &[("train_images", npy_u8(&[1, 2, 2], &[0; 4])), ("train_labels", npy_u8(&[1, 1], &[2]))], false);
    let e = err_of(bad.path(), None, &LoadOptions::default());
    assert!(e.contains("label 2 of sample train/0 is out of range") && e.contains("breastmnist has 2 classes"), "{e}");
    // Images without labels; image and label counts that differ.
    write_npz(&bad.join("breastmnist.npz"), &[("train_images", npy_u8(&[1, 2, 2], &[0; 4]))], false);
    assert!(err_of(bad.path(), None, &LoadOptions::default()).contains("has train_images but no train_labels"));
    write_npz(&bad.join("breastmnist.npz"), &[("train_images", npy_u8(&[2, 2, 2], &[0; 8])), ("train_labels", npy_u8(&[1], &[0]))], false);
    assert!(err_of(bad.path(), None, &LoadOptions::default()).contains("holds 2 images but train_labels holds 1 labels"));
    // Not a zip at all.
    std::fs::write(bad.join("breastmnist.npz"), b"not a zip").unwrap();
    let e = err_of(bad.path(), None, &LoadOptions::default());
    assert!(e.contains("breastmnist.npz") && e.contains("not a valid .npz"), "{e}");
}

// ---- ImageFolder ----------------------------------------------------------------------------------------------

#[test]
fn imagefolder_classes_sorted_nested_and_non_images_skipped() {
    let dir = TempDir::new("imagefolder");
    let root = dir.path();
    write_png(&root.join("nevus/a.png"), 1);
    write_jpeg(&root.join("nevus/sub/b.jpg"), 2);
    write_png(&root.join("melanoma/c.png"), 3);
    write_tiff(&root.join("melanoma/d.tif"), 4);
    write_text(&root.join("melanoma/notes.txt"), "not an image");
    write_text(&root.join("README.md"), "labels are folder names");
    assert_eq!(detect(root).unwrap().kind, DatasetKind::ImageFolder);
    let ds = load_auto(root);
    assert_eq!(ds.class_names, names(&["melanoma", "nevus"]));
    assert_eq!(
        summary(&ds),
        vec![
            ("melanoma/c.png".into(), "melanoma".into(), None),
            ("melanoma/d.tif".into(), "melanoma".into(), None),
            ("nevus/a.png".into(), "nevus".into(), None),
            ("nevus/sub/b.jpg".into(), "nevus".into(), None),
        ]
    );
    // TIFF decodes through the `image` crate.
    let tif = ds.samples.iter().find(|s| s.id.ends_with(".tif")).unwrap();
    let (w, h, px) = ds.load_rgb8(tif).unwrap();
    assert_eq!((w, h), (4, 3));
    assert_eq!(px, pattern(4, 3, 4).into_raw());
    // Read as unlabelled on request.
    let ds = load(root, None, &LoadOptions { unlabelled: true, ..Default::default() }).unwrap();
    assert!(ds.class_names.is_empty() && ds.samples.len() == 4 && ds.samples.iter().all(|s| s.label.is_none()));

    // An empty class folder would shift the class indices: an error naming it.
    std::fs::create_dir_all(root.join("seborrheic")).unwrap();
    write_text(&root.join("seborrheic/.DS_Store"), "x");
    let e = err_of(root, None, &LoadOptions::default());
    assert!(e.contains("class folder 'seborrheic' has no images"), "{e}");
}

#[test]
fn imagefolder_unlabelled_flat_and_nested() {
    let flat = TempDir::new("unlabelled-flat");
    write_png(&flat.join("x1.png"), 1);
    write_jpeg(&flat.join("x2.JPG"), 2);
    write_text(&flat.join("licence.txt"), "x");
    let ds = load_auto(flat.path());
    assert_eq!(ds.format, "imagefolder");
    assert!(ds.class_names.is_empty());
    assert_eq!(summary(&ds), vec![("x1.png".into(), "-".into(), None), ("x2.JPG".into(), "-".into(), None)]);

    // One subfolder holding nested images (an unzipped archive): unlabelled, not a one-class data set.
    let nested = TempDir::new("unlabelled-nested");
    write_png(&nested.join("images/part1/a.png"), 1);
    write_png(&nested.join("images/part2/b.png"), 2);
    let ds = load_auto(nested.path());
    assert!(ds.class_names.is_empty());
    assert_eq!(ds.samples.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["images/part1/a.png", "images/part2/b.png"]);

    // Nothing at all.
    let empty = TempDir::new("empty");
    write_text(&empty.join("notes.txt"), "x");
    let e = err_of(empty.path(), None, &LoadOptions::default());
    assert!(e.contains("cannot detect") && e.contains("HAM10000_metadata.csv") && e.contains("*.npz"), "{e}");
    let e = err_of(empty.path(), Some(DatasetKind::ImageFolder), &LoadOptions::default());
    assert!(e.contains("no images"), "{e}");
}

// ---- generic CSV ----------------------------------------------------------------------------------------------

#[test]
fn csv_header_string_labels_and_extensions() {
    let dir = TempDir::new("csv");
    let root = dir.path();
    write_jpeg(&root.join("imgs/ISIC_0000001.jpg"), 1);
    write_png(&root.join("imgs/sub/b.png"), 2);
    write_png(&root.join("imgs/c.png"), 3);
    // The reference's `image,label` CSV: ids without extension, a relative path with one; string labels sorted.
    write_text(&root.join("train.csv"), "image,label\nISIC_0000001,nevus\nsub/b.png,melanoma\nc,nevus\n");
    let opts = LoadOptions { csv_path: Some("train.csv".into()), image_dir: Some("imgs".into()), ..Default::default() };
    let ds = load(root, None, &opts).unwrap();
    assert_eq!(ds.format, "csv");
    assert_eq!(ds.class_names, names(&["melanoma", "nevus"]));
    assert_eq!(
        summary(&ds),
        vec![("ISIC_0000001".into(), "nevus".into(), None), ("c".into(), "nevus".into(), None), ("sub/b.png".into(), "melanoma".into(), None),]
    );
    // Swapped columns named by the header.
    write_text(&root.join("train.csv"), "label,image\nnevus,ISIC_0000001\nmelanoma,sub/b.png\n");
    let ds = load(root, Some(DatasetKind::Csv), &opts).unwrap();
    assert_eq!(summary(&ds), vec![("ISIC_0000001".into(), "nevus".into(), None), ("sub/b.png".into(), "melanoma".into(), None)]);
    // Kaggle-style names (`id_code,diagnosis`) in another order, with an extra column.
    write_text(&root.join("train.csv"), "diagnosis,notes,id_code\n2,x,c\n0,y,ISIC_0000001\n");
    let ds = load(root, Some(DatasetKind::Csv), &opts).unwrap();
    assert_eq!(ds.class_names, names(&["0", "1", "2"]));
    assert_eq!(summary(&ds), vec![("ISIC_0000001".into(), "0".into(), None), ("c".into(), "2".into(), None)]);
}

#[test]
fn csv_without_header_integer_labels() {
    let dir = TempDir::new("csv-noheader");
    let root = dir.path();
    write_png(&root.join("a.png"), 1);
    write_png(&root.join("b.png"), 2);
    write_text(&root.join("labels.csv"), "a.png,1\nb,3\n");
    // The only CSV in the root is found without --csv.
    let ds = load(root, Some(DatasetKind::Csv), &LoadOptions::default()).unwrap();
    assert_eq!(ds.class_names, names(&["0", "1", "2", "3"]));
    assert_eq!(summary(&ds), vec![("a.png".into(), "1".into(), None), ("b".into(), "3".into(), None)]);
}

#[test]
fn csv_bad_inputs() {
    let dir = TempDir::new("csv-bad");
    let root = dir.path();
    write_png(&root.join("a.png"), 1);
    let opts = LoadOptions { csv_path: Some("labels.csv".into()), ..Default::default() };
    let e = err_of(root, None, &opts);
    assert!(e.contains("labels.csv") && e.contains("missing CSV"), "{e}");
    // The same id twice is an error naming both lines.
    write_text(&root.join("labels.csv"), "image,label\na,x\nb,y\na,y\n");
    let e = err_of(root, None, &opts);
    assert!(e.contains("labels.csv:4") && e.contains("duplicate id 'a'") && e.contains("labels.csv:2"), "{e}");
    write_text(&root.join("labels.csv"), "image,label\na,\n");
    assert!(err_of(root, None, &opts).contains("labels.csv:2: empty label"));
    write_text(&root.join("labels.csv"), "image,label\nnope,x\n");
    let e = err_of(root, None, &opts);
    assert!(e.contains("nope (labels.csv:2)"), "{e}");
    write_text(&root.join("labels.csv"), "image,label\n");
    assert!(err_of(root, None, &opts).contains("empty"));
    write_text(&root.join("other.csv"), "image,label\n");
    let e = err_of(root, Some(DatasetKind::Csv), &LoadOptions::default());
    assert!(e.contains("several CSV files"), "{e}");
}

// ---- detection, names, decoding -------------------------------------------------------------------------------

#[test]
fn ambiguous_markers_are_an_error_listing_them() {
    let dir = TempDir::new("ambiguous");
    let root = dir.path();
    isic18_split(root, "Training", &[("ISIC_0000001", 0)], true);
    write_text(&root.join("HAM10000_metadata.csv"), "lesion_id,image_id,dx\nHAM_1,ISIC_0000001,mel\n");
    write_jpeg(&root.join("HAM10000_images_part_1/ISIC_0000001.jpg"), 1);
    let e = err_of(root, None, &LoadOptions::default());
    assert!(e.contains("ambiguous") && e.contains("isic2018 (ISIC2018_Task3_Training_GroundTruth.csv)") && e.contains("ham10000"), "{e}");
    // Either format loads when named.
    assert_eq!(load(root, Some(DatasetKind::Ham10000), &LoadOptions::default()).unwrap().samples.len(), 1);
    assert_eq!(load(root, Some(DatasetKind::Isic2018), &LoadOptions::default()).unwrap().samples.len(), 1);
    // A train.csv that is not APTOS's does not count as a marker.
    let other = TempDir::new("not-aptos");
    write_text(&other.join("train.csv"), "image,label\n");
    write_png(&other.join("a/x.png"), 1);
    write_png(&other.join("b/y.png"), 1);
    assert_eq!(detect(other.path()).unwrap().kind, DatasetKind::ImageFolder);
}

#[test]
fn kind_names_round_trip() {
    for k in DatasetKind::ALL {
        assert_eq!(k.to_string().parse::<DatasetKind>().unwrap(), k);
    }
    assert_eq!("ISIC2018".parse::<DatasetKind>().unwrap(), DatasetKind::Isic2018);
    assert_eq!("image-folder".parse::<DatasetKind>().unwrap(), DatasetKind::ImageFolder);
    let e = "cifar10".parse::<DatasetKind>().unwrap_err();
    assert!(e.contains("isic2018, ham10000, isic2017, aptos2019, medmnist, imagefolder, csv"), "{e}");
}

#[test]
fn corrupt_image_in_a_data_set_names_the_file() {
    let dir = TempDir::new("corrupt");
    write_png(&dir.join("a/ok.png"), 1);
    write_text(&dir.join("b/broken.png"), "\u{89}PNG garbage");
    let ds = load_auto(dir.path());
    let s = ds.samples.iter().find(|s| s.id == "b/broken.png").unwrap();
    let e = ds.load_rgb8(s).unwrap_err();
    assert!(matches!(e, Error::Image { .. }) && e.to_string().contains("broken.png"), "{e}");
}

// ---- the CLI --------------------------------------------------------------------------------------------------

fn fgssl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fgssl")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn cli_dataset_prints_classes_per_split() {
    let dir = TempDir::new("cli");
    let root = dir.path();
    isic17_split(root, "Training", &[("ISIC_0000000", 0, 0), ("ISIC_0000001", 1, 0), ("ISIC_0000002", 0, 1)]);
    isic17_split(root, "Test_v2", &[("ISIC_0012086", 1, 0)]);
    let data = root.to_str().unwrap();
    let (code, out, err) = fgssl(&["dataset", "--data", data, "--task", "3class"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("format: isic2017"), "{out}");
    assert!(out.contains("classes: 3"), "{out}");
    let mel = out.lines().find(|l| l.trim_start().starts_with("melanoma")).unwrap();
    let nums: Vec<&str> = mel.split_whitespace().skip(1).collect();
    assert_eq!(nums, ["1", "1", "2"], "train, test, total: {out}");
    assert!(out.contains("detected from ISIC-2017_Test_v2_Part3_GroundTruth.csv"), "{out}");

    let (code, _, err) = fgssl(&["dataset", "--data", root.join("nope").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: ") && err.contains("nope"), "{err}");
    let (code, _, err) = fgssl(&["dataset", "--data", data, "--dataset", "aptos2019"]);
    assert_eq!(code, 1);
    assert!(err.contains("train.csv") && err.contains("missing CSV"), "{err}");
    let (code, _, err) = fgssl(&["dataset", "--data", data, "--dataset", "cifar"]);
    assert_eq!(code, 2, "{err}");
}

// ---- opt-in real data sets ------------------------------------------------------------------------------------

/// Loads the data set at `$var` (auto-detected) and checks it is non-empty and labelled; prints what it found.
fn real_data(var: &str, kind: DatasetKind, opts: LoadOptions) {
    let Some(root) = std::env::var_os(var) else {
        println!("skipped: set {var} to a {kind} root to run this test");
        return;
    };
    let ds = load(Path::new(&root), Some(kind), &opts).unwrap_or_else(|e| panic!("{var}: {e}"));
    assert!(!ds.samples.is_empty());
    let counts = ds.class_counts();
    for (i, split) in ["train", "val", "test", "unsplit"].iter().enumerate() {
        println!("{var} {split}: {:?}", ds.class_names.iter().zip(&counts[i]).collect::<Vec<_>>());
    }
    // The first image of each official split decodes.
    for split in [Some(Split::Train), Some(Split::Val), Some(Split::Test), None] {
        if let Some(s) = ds.samples.iter().find(|s| s.official_split == split) {
            let (w, h, _) = ds.load_rgb8(s).unwrap_or_else(|e| panic!("{var}: {e}"));
            println!("{var}: {} decodes to {w}x{h}", s.id);
        }
    }
}

#[test]
fn real_isic2018() {
    real_data("FGSSL_ISIC2018", DatasetKind::Isic2018, LoadOptions::default());
}

#[test]
fn real_ham10000() {
    real_data("FGSSL_HAM10000", DatasetKind::Ham10000, LoadOptions::default());
}

#[test]
fn real_isic2017() {
    real_data("FGSSL_ISIC2017", DatasetKind::Isic2017, LoadOptions { isic2017_task: Isic2017Task::ThreeClass, ..Default::default() });
}

#[test]
fn real_aptos2019() {
    real_data("FGSSL_APTOS", DatasetKind::Aptos2019, LoadOptions::default());
}

#[test]
fn real_medmnist() {
    real_data("FGSSL_MEDMNIST", DatasetKind::MedMnist, LoadOptions::default());
}
