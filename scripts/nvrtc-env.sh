# nvrtc-env.sh: finds the NVRTC the fgssl binary should preload and exports FGSSL_NVRTC_DIR (and CUDA_INCLUDE_DIRS
# when headers sit next to it). Sourced by scripts/gpu-check.sh and scripts/conv-lab.sh from the repository root.
# A folder holding both libnvrtc.so.13 and libnvrtc-builtins.so.13.0 (what the binary preloads): FGSSL_NVRTC_DIR as
# given, else the carried .venv-cuda wheel, else the CUDA toolkit, else a Python's nvidia/cu13 wheel (PyTorch's).
nvrtc_dir_ok() { [ -f "$1/libnvrtc.so.13" ] && [ -f "$1/libnvrtc-builtins.so.13.0" ]; }
if [ -z "${FGSSL_NVRTC_DIR:-}" ]; then
    candidates=$(
        ls -d .venv-cuda/lib/python3*/site-packages/nvidia/cu13/lib 2>/dev/null | sort -r
        ls -d /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 /usr/lib/x86_64-linux-gnu 2>/dev/null
        python3 -c 'import nvidia.cu13 as m; print(list(m.__path__)[0] + "/lib")' 2>/dev/null
    )
    for d in $candidates; do
        if nvrtc_dir_ok "$d"; then
            FGSSL_NVRTC_DIR=$(cd "$d" && pwd)
            export FGSSL_NVRTC_DIR
            break
        fi
    done
fi
if [ -n "${FGSSL_NVRTC_DIR:-}" ] && [ -z "${CUDA_INCLUDE_DIRS:-}" ]; then
    for inc in "$FGSSL_NVRTC_DIR/../include" /usr/local/cuda/include; do
        if [ -f "$inc/cuda_fp16.h" ]; then
            CUDA_INCLUDE_DIRS=$(cd "$inc" && pwd)
            export CUDA_INCLUDE_DIRS
            break
        fi
    done
fi
