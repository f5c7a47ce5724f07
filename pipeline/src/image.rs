//! The image step: encoded JPEG or PNG bytes to a normalised FP32 tensor,
//! as torchvision's `Resize(resize)`, `CenterCrop(crop)`, `ToTensor()` and
//! `Normalize(mean, std)` make it from a PIL image.
//!
//! The header is read first: an image over the step's pixel limit, or with
//! more pixels than [`PIXELS_PER_BYTE`] per byte of its encoding (a small
//! file that would decode into a huge bitmap), is refused before it is
//! decoded, and the decoder's own allocations are capped as well.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{ImageReader, Limits, RgbImage};
use maas_protocol::pipeline::ImageStep;
use maas_protocol::TensorBytes;

use crate::tensors::{fp32, one_string_per_row, StepError};

/// Most pixels an image may have per byte of its encoding, past a floor
/// of [`PIXELS_FLOOR`]: photographs compress to a few bits per pixel, so a
/// legitimate image stays far below, while a decompression bomb (a flat
/// image of millions of pixels in a few kilobytes) is refused.
pub const PIXELS_PER_BYTE: u64 = 64;
/// Pixels any image may have, whatever its encoded size.
pub const PIXELS_FLOOR: u64 = 1 << 20;
/// The widest aspect ratio taken: resizing scales the shorter side to the
/// step's `resize`, so a thin image would become an enormous one.
pub const MAX_ASPECT: u64 = 16;

/// Decodes each row's image of `images` and returns `pixels`, FP32
/// `[rows, 3, crop, crop]`.
pub fn run(step: &ImageStep, images: &TensorBytes, rows: usize) -> Result<Vec<TensorBytes>, StepError> {
    let side = step.crop as usize;
    // Grown row by row: rows of bad images cost nothing up front.
    let mut values = Vec::new();
    for (row, encoded) in one_string_per_row(images, rows)?.into_iter().enumerate() {
        let image =
            decode(step, encoded).map_err(|e| StepError::Input(format!("row {row} of '{}': {e}", images.name)))?;
        normalise_into(step, &center_crop(&resize_shorter(&image, step.resize), step.crop), &mut values);
    }
    Ok(vec![fp32("pixels", vec![rows as i64, 3, side as i64, side as i64], &values)])
}

/// Decodes one JPEG or PNG to RGB, refusing it past `max_pixels`.
fn decode(step: &ImageStep, encoded: &[u8]) -> Result<RgbImage, String> {
    let reader = || ImageReader::new(Cursor::new(encoded)).with_guessed_format().map_err(|e| e.to_string());
    let first = reader()?;
    if first.format().is_none() {
        return Err("not an image maas decodes (JPEG or PNG)".into());
    }
    let (width, height) = first.into_dimensions().map_err(|e| format!("unreadable image: {e}"))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > step.max_pixels {
        return Err(format!("the image is {width}x{height}, over the {} pixels this pipeline takes", step.max_pixels));
    }
    let (short, long) = (u64::from(width.min(height)), u64::from(width.max(height)));
    if short == 0 || long > short.saturating_mul(MAX_ASPECT) {
        return Err(format!("the image is {width}x{height}: its sides differ by more than {MAX_ASPECT} times"));
    }
    let plausible = (encoded.len() as u64).saturating_mul(PIXELS_PER_BYTE).max(PIXELS_FLOOR);
    if pixels > plausible {
        return Err(format!(
            "the image claims {width}x{height} pixels in {} bytes: more than {PIXELS_PER_BYTE} pixels per byte",
            encoded.len()
        ));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(pixels.saturating_mul(16).max(1 << 20));
    let mut second = reader()?;
    second.limits(limits);
    let image = second.decode().map_err(|e| format!("undecodable image: {e}"))?;
    Ok(image.to_rgb8())
}

/// Resizes so that the shorter side is `short`, the longer side scaled
/// and truncated as torchvision computes it; bilinear, antialiased when
/// shrinking (as PIL's `BILINEAR`). The aspect ratio was bounded by
/// [`decode`], so the longer side is at most [`MAX_ASPECT`] × `short`.
fn resize_shorter(image: &RgbImage, short: u32) -> RgbImage {
    let (width, height) = image.dimensions();
    let scaled = |long: u32, other: u32| (u64::from(short) * u64::from(long) / u64::from(other).max(1)) as u32;
    let (new_width, new_height) =
        if width <= height { (short, scaled(height, width)) } else { (scaled(width, height), short) };
    if (new_width, new_height) == (width, height) {
        return image.clone();
    }
    image::imageops::resize(image, new_width.max(1), new_height.max(1), FilterType::Triangle)
}

/// The centred `side` square, its offsets rounded as Python's `round`
/// does (half to even), as torchvision's `CenterCrop`.
fn center_crop(image: &RgbImage, side: u32) -> RgbImage {
    let (width, height) = image.dimensions();
    let offset = |length: u32| (f64::from(length.saturating_sub(side)) / 2.0).round_ties_even() as u32;
    let (left, top) = (offset(width), offset(height));
    image::imageops::crop_imm(image, left, top, side.min(width), side.min(height)).to_image()
}

/// Appends the image as channels first, scaled to [0, 1] and normalised.
fn normalise_into(step: &ImageStep, image: &RgbImage, out: &mut Vec<f32>) {
    let side = step.crop as usize;
    let (width, height) = (image.width() as usize, image.height() as usize);
    for channel in 0..3 {
        let (mean, std) = (step.mean[channel], step.std[channel]);
        for y in 0..side {
            for x in 0..side {
                // Both sides are at least `resize`, so at least `crop`;
                // the guard only keeps a bad crop from indexing out.
                let value = if x < width && y < height {
                    f32::from(image.get_pixel(x as u32, y as u32)[channel]) / 255.0
                } else {
                    0.0
                };
                out.push((value - mean) / std);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use maas_protocol::{strings, DataType};

    use super::*;
    use crate::tensors::tensor;

    fn step() -> ImageStep {
        serde_json_step(r#"{"resize": 8, "crop": 4}"#)
    }

    fn serde_json_step(json: &str) -> ImageStep {
        serde_json::from_str(json).unwrap()
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 20) as u8, (y * 20) as u8, 128]));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn images(rows: &[&[u8]]) -> TensorBytes {
        tensor("IMAGE", DataType::Bytes, vec![rows.len() as i64, 1], strings::encode(rows.iter().copied()))
    }

    #[test]
    fn images_become_normalised_channels_first() {
        let out = run(&step(), &images(&[&png(16, 8), &png(8, 8)]), 2).unwrap();
        assert_eq!(out[0].shape, vec![2, 3, 4, 4]);
        let values: Vec<f32> = out[0].data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        // The third channel is 128 everywhere: (128/255 - 0.406) / 0.225.
        let blue = (128.0 / 255.0 - 0.406) / 0.225;
        assert!(values[32..48].iter().all(|v| (v - blue).abs() < 1e-5), "{:?}", &values[32..48]);
        // The 8x8 image needs no resize; its crop starts at (2, 2): red is 40.
        let red = (40.0 / 255.0 - 0.485) / 0.229;
        assert!((values[48] - red).abs() < 1e-5, "{}", values[48]);
    }

    #[test]
    fn bad_images_are_refused_before_decoding_what_is_too_large() {
        let garbage = run(&step(), &images(&[b"not an image at all"]), 1).unwrap_err();
        assert!(matches!(&garbage, StepError::Input(m) if m.contains("row 0 of 'IMAGE'")), "{garbage:?}");
        let mut cut = png(8, 8);
        cut.truncate(cut.len() / 2);
        assert!(matches!(run(&step(), &images(&[&cut]), 1), Err(StepError::Input(_))));
        let small = serde_json_step(r#"{"resize": 8, "crop": 4, "max_pixels": 50}"#);
        let large = run(&small, &images(&[&png(8, 8)]), 1).unwrap_err();
        assert!(matches!(&large, StepError::Input(m) if m.contains("8x8, over the 50 pixels")), "{large:?}");
        // A flat 2048x2048 image compresses to a few kilobytes: a bomb.
        use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
        use image::ImageEncoder;
        let flat = RgbImage::from_pixel(2048, 2048, image::Rgb([7, 7, 7]));
        let mut encoded = Vec::new();
        PngEncoder::new_with_quality(&mut encoded, CompressionType::Best, PngFilter::NoFilter)
            .write_image(flat.as_raw(), 2048, 2048, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert!(encoded.len() < 65536, "{} bytes", encoded.len());
        let bomb = run(&step(), &images(&[&encoded]), 1).unwrap_err();
        assert!(matches!(&bomb, StepError::Input(m) if m.contains("pixels per byte")), "{bomb:?}");
        // A thin line would be resized into an enormous image.
        let thin = run(&step(), &images(&[&png(1, 200)]), 1).unwrap_err();
        assert!(matches!(&thin, StepError::Input(m) if m.contains("differ by more than 16 times")), "{thin:?}");
    }
}
