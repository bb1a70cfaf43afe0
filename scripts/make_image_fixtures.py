#!/usr/bin/env python3
"""Pillow parity fixtures for fgssl's image decoding and resizing (src/imaging.rs, tests/pil_parity.rs).

Default mode writes small test images into tests/fixtures/images/ (relative to the repository root, whatever the
working directory) together with `pil_reference.safetensors`, Pillow's view of each of them:

    ycc420.jpg        JPEG, baseline, 4:2:0 chroma subsampling (the common camera/web case)
    ycc422.jpg        JPEG, baseline, 4:2:2
    ycc444.jpg        JPEG, baseline, 4:4:4
    progressive.jpg   JPEG, progressive, 4:2:0, optimised Huffman tables
    restart.jpg       JPEG, baseline, 4:2:0, low quality, restart markers every MCU row
    corrupt.jpg       JPEG, 4:2:0, with random bytes written over part of the entropy-coded data: libjpeg only
                      warns ("Corrupt JPEG data"), Pillow ignores the warnings and returns garbled pixels
    gray.jpg          JPEG, one grayscale component (Pillow mode L; convert("RGB") replicates it)
    cmyk.jpg          JPEG, four components with an Adobe marker (Pillow mode CMYK, "Adobe" inverted convention)
    rgba.png          PNG, RGBA with varying alpha (convert("RGB") drops alpha, no compositing)
    palette.png       PNG, 8-bit palette (mode P)
    gray.png          PNG, 8-bit grayscale (mode L)
    gray16.png        PNG, 16-bit grayscale (Pillow mode I;16: convert("RGB") clamps values to 255, no scaling)
    rgb16.png         PNG, 16-bit RGB (Pillow keeps the high byte of each sample)
    rgb.bmp           BMP, 24-bit
    palette.bmp       BMP, 8-bit palette, with the pixel-data offset field pointing at the palette (as some writers
                      do); Pillow then skips the palette, see BmpImagePlugin `offset == 14 + header_size`

All sizes are odd and not multiples of the JPEG MCU size; the content is smooth random colour fields plus a few
sharp shapes, so JPEG chroma upsampling, IDCT rounding and colour conversion all show up in the pixels.

Tensors in pil_reference.safetensors, for every image file NAME:

    NAME/rgb               uint8 [H, W, 3]  np.asarray(Image.open(NAME).convert("RGB"))
    NAME/resize_WxH        uint8 [H, W, 3]  ... .resize((W, H), Image.BILINEAR), for (W, H) in RESIZES
    NAME/normalized_S      float32 [3, S, S] torchvision Resize((S, S)) -> ToTensor() -> Normalize(ImageNet),
                                             for NORMALIZED_IMAGES only (needs torchvision)

Metadata strings: pillow_version, libjpeg_turbo_version, generator, schema.

Rerun (a few seconds; the images and tensors are deterministic for a given Pillow build, only the order of the
metadata keys in the safetensors header can vary):

    python3 -m venv /tmp/v && /tmp/v/bin/pip install pillow numpy safetensors torch torchvision
    /tmp/v/bin/python scripts/make_image_fixtures.py

Stress mode (not committed; checks many more random sizes, qualities and formats):

    /tmp/v/bin/python scripts/make_image_fixtures.py --stress /tmp/pil_stress --count 300
    FGSSL_PIL_STRESS_DIR=/tmp/pil_stress cargo test --release --test pil_parity -- --nocapture

writes random images plus the same kind of pil_reference.safetensors into the given directory, with resizes to
random sizes (upscale and downscale, non-square, 1-pixel, unchanged, and 224x224); `tests/pil_parity.rs` checks
that directory too when FGSSL_PIL_STRESS_DIR is set.
"""

import argparse
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, features
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "images")
RESIZES = [(24, 24), (40, 40), (57, 19)]
NORMALIZED_IMAGES = {"ycc420.jpg": 24, "rgba.png": 24}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def smooth_field(rng, h, w, channels=3):
    """Random smooth colour field (sums of random plane waves) with a few hard-edged shapes, as uint8."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((h, w, channels))
    for c in range(channels):
        acc = rng.uniform(60, 190) + np.zeros((h, w))
        for _ in range(4):
            fx, fy = rng.uniform(-0.25, 0.25, size=2)
            acc += rng.uniform(10, 45) * np.sin(fx * xx + fy * yy + rng.uniform(0, 2 * np.pi))
        out[..., c] = acc
    for _ in range(3):  # sharp shapes: JPEG ringing and chroma edges
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(2, max(3.0, min(h, w) / 3))
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        if rng.uniform() < 0.5:
            mask = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r * 0.6)
        out[mask] = rng.uniform(0, 255, size=channels)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def jpeg_bytes(img, **kw):
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def make_default_images(rng):
    """name -> encoded bytes."""
    files = {}
    rgb = lambda h, w: Image.fromarray(smooth_field(rng, h, w), "RGB")  # noqa: E731
    files["ycc420.jpg"] = jpeg_bytes(rgb(37, 45), quality=85, subsampling=2)
    files["ycc422.jpg"] = jpeg_bytes(rgb(29, 51), quality=90, subsampling=1)
    files["ycc444.jpg"] = jpeg_bytes(rgb(41, 23), quality=75, subsampling=0)
    files["progressive.jpg"] = jpeg_bytes(rgb(35, 43), quality=80, subsampling=2, progressive=True, optimize=True)
    files["restart.jpg"] = jpeg_bytes(rgb(27, 49), quality=40, subsampling=2, restart_marker_rows=1)
    data = bytearray(jpeg_bytes(rgb(39, 41), quality=85, subsampling=2))
    sos = data.index(b"\xff\xda")
    junk = rng.integers(0, 255, size=24, dtype=np.uint8)  # never 0xFF: no fake markers, just bad Huffman codes
    data[sos + 60 : sos + 60 + len(junk)] = junk.tobytes()
    files["corrupt.jpg"] = bytes(data)
    files["gray.jpg"] = jpeg_bytes(Image.fromarray(smooth_field(rng, 33, 39, 1)[..., 0], "L"), quality=85)
    files["cmyk.jpg"] = jpeg_bytes(Image.fromarray(smooth_field(rng, 25, 31, 4), "CMYK"), quality=85)
    alpha = smooth_field(rng, 31, 27, 1)
    rgba = np.concatenate([smooth_field(rng, 31, 27), alpha], axis=2)
    files["rgba.png"] = png_bytes(Image.fromarray(rgba, "RGBA"))
    files["palette.png"] = png_bytes(rgb(33, 35).quantize(colors=64))
    files["gray.png"] = png_bytes(Image.fromarray(smooth_field(rng, 21, 47, 1)[..., 0], "L"))
    g16 = smooth_field(rng, 19, 23, 1)[..., 0].astype(np.uint16) * 3  # values up to 765: some clamp, some do not
    files["gray16.png"] = png_bytes(Image.fromarray(g16))  # uint16 -> mode I;16
    files["rgb16.png"] = png16_bytes(wide16(rng, 17, 21, 3), 2)
    buf = io.BytesIO()
    rgb(23, 31).save(buf, format="BMP")
    files["rgb.bmp"] = buf.getvalue()
    buf = io.BytesIO()
    rgb(15, 19).quantize(colors=16).save(buf, format="BMP")
    data = bytearray(buf.getvalue())
    data[10:14] = struct.pack("<I", 14 + 40)  # bfOffBits = end of the info header
    files["palette.bmp"] = bytes(data)
    return files


def png16_bytes(arr, color_type):
    """A 16-bit PNG (colour type 0 gray, 2 RGB, 4 gray+alpha or 6 RGBA) of a uint16 [H, W(, C)] array; Pillow
    cannot write 16-bit colour PNGs itself."""
    arr = np.asarray(arr, dtype=">u2")
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def wide16(rng, h, w, channels):
    """16-bit content: an 8-bit smooth field times 257 plus low-byte noise (so high byte vs v/257 rounding differ)."""
    base = smooth_field(rng, h, w, channels).astype(np.uint32) * 257
    return np.clip(base + rng.integers(-128, 128, size=base.shape), 0, 65535).astype(np.uint16)


def png_bytes(img):
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def reference(path, resizes, normalized_size=None):
    """Pillow's tensors for one file (see the module docstring)."""
    name = os.path.basename(path)
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    out = {f"{name}/rgb": np.asarray(rgb, dtype=np.uint8).copy()}
    for w, h in resizes:
        out[f"{name}/resize_{w}x{h}"] = np.asarray(rgb.resize((w, h), Image.BILINEAR), dtype=np.uint8).copy()
    if normalized_size is not None:
        import torch
        from torchvision import transforms

        tf = transforms.Compose(
            [
                transforms.Resize((normalized_size, normalized_size)),
                transforms.ToTensor(),
                transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )
        with torch.no_grad():
            out[f"{name}/normalized_{normalized_size}"] = tf(rgb).numpy().astype(np.float32)
    return out


def metadata(mode):
    return {
        "pillow_version": Image.__version__ if hasattr(Image, "__version__") else __import__("PIL").__version__,
        "libjpeg_turbo_version": str(features.version("libjpeg_turbo")),
        "generator": "scripts/make_image_fixtures.py" + (" --stress" if mode == "stress" else ""),
        "schema": "NAME/rgb, NAME/resize_WxH (uint8 HWC), NAME/normalized_S (f32 CHW); see the generator docstring",
    }


def write_default():
    rng = np.random.default_rng(20240611)
    os.makedirs(OUT_DIR, exist_ok=True)
    tensors = {}
    for name, data in make_default_images(rng).items():
        path = os.path.join(OUT_DIR, name)
        with open(path, "wb") as f:
            f.write(data)
        tensors.update(reference(path, RESIZES, NORMALIZED_IMAGES.get(name)))
    ref = os.path.join(OUT_DIR, "pil_reference.safetensors")
    save_file(tensors, ref, metadata=metadata("default"))
    total = sum(os.path.getsize(os.path.join(OUT_DIR, f)) for f in os.listdir(OUT_DIR))
    print(f"wrote {len(os.listdir(OUT_DIR))} files into {OUT_DIR} ({total / 1024:.1f} KiB)")


def random_size(rng, lo=1, hi=300):
    # Bias towards small and odd sizes; sometimes a 1-pixel dimension.
    if rng.uniform() < 0.08:
        return 1
    return int(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def write_stress(out_dir, count, seed):
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    tensors = {}
    check_torchvision = True
    try:
        from torchvision import transforms
    except ImportError:
        check_torchvision = False
    for i in range(count):
        h, w = random_size(rng), random_size(rng)
        kind = rng.choice(
            ["jpeg", "jpeg", "jpeg", "jpeg_gray", "jpeg_cmyk", "png", "png_rgba", "png_p", "png_l", "png_la", "png_1", "png16", "bmp"]
        )
        if kind.startswith("jpeg"):
            name = f"s{i:04d}.jpg"
            q = int(rng.integers(5, 101))
            if kind == "jpeg_gray":
                im = Image.fromarray(smooth_field(rng, h, w, 1)[..., 0], "L")
                data = jpeg_bytes(im, quality=q, progressive=bool(rng.integers(2)))
            elif kind == "jpeg_cmyk":
                data = jpeg_bytes(Image.fromarray(smooth_field(rng, h, w, 4), "CMYK"), quality=q)
            else:
                im = Image.fromarray(smooth_field(rng, h, w), "RGB")
                kw = dict(quality=q, subsampling=int(rng.integers(0, 3)))
                if rng.uniform() < 0.3:
                    kw["progressive"] = True
                if rng.uniform() < 0.3:
                    kw["optimize"] = True
                if rng.uniform() < 0.2:
                    kw["restart_marker_blocks"] = int(rng.integers(1, 8))
                data = jpeg_bytes(im, **kw)
        elif kind == "bmp":
            name = f"s{i:04d}.bmp"
            buf = io.BytesIO()
            Image.fromarray(smooth_field(rng, h, w), "RGB").save(buf, format="BMP")
            data = buf.getvalue()
        elif kind == "png16":
            name = f"s{i:04d}.png"
            ct = int(rng.choice([0, 2, 4, 6]))
            if ct == 0:
                data = png_bytes(Image.fromarray(wide16(rng, h, w, 1)[..., 0] // int(rng.choice([1, 64, 256]))))
            else:
                data = png16_bytes(wide16(rng, h, w, {2: 3, 4: 2, 6: 4}[ct]), ct)
        else:
            name = f"s{i:04d}.png"
            if kind == "png":
                im = Image.fromarray(smooth_field(rng, h, w), "RGB")
            elif kind == "png_rgba":
                im = Image.fromarray(smooth_field(rng, h, w, 4), "RGBA")
            elif kind == "png_p":
                im = Image.fromarray(smooth_field(rng, h, w), "RGB").quantize(colors=int(rng.integers(2, 257)))
            elif kind == "png_l":
                im = Image.fromarray(smooth_field(rng, h, w, 1)[..., 0], "L")
            elif kind == "png_la":
                im = Image.fromarray(smooth_field(rng, h, w, 2), "LA")
            else:
                im = Image.fromarray(smooth_field(rng, h, w, 1)[..., 0], "L").convert("1")
            data = png_bytes(im)
        path = os.path.join(out_dir, name)
        with open(path, "wb") as f:
            f.write(data)
        sizes = {(224, 224), (w, h), (random_size(rng), random_size(rng)), (random_size(rng, 1, 600), random_size(rng, 1, 600))}
        sizes.add((max(1, w // 2), max(1, h // 3)))
        sizes.add((w + 1, max(1, h - 1)))
        ref = reference(path, sorted(sizes))
        if check_torchvision and i % 10 == 0:
            # torchvision's Resize on a PIL image is exactly Image.resize(BILINEAR).
            with Image.open(path) as im:
                rgb = im.convert("RGB")
            tv = np.asarray(transforms.Resize((224, 224))(rgb))
            assert np.array_equal(tv, ref[f"{name}/resize_224x224"]), name
        tensors.update(ref)
    save_file(tensors, os.path.join(out_dir, "pil_reference.safetensors"), metadata=metadata("stress"))
    print(f"wrote {count} images and pil_reference.safetensors into {out_dir}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stress", metavar="DIR", help="write random stress images + references into DIR instead")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.stress:
        write_stress(args.stress, args.count, args.seed)
    else:
        write_default()
    return 0


if __name__ == "__main__":
    sys.exit(main())
