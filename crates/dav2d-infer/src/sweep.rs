//! Trying a processor's threshold on real images: for each threshold, the
//! mask's coverage, its connected regions (4-connected: noise shows as many
//! small ones) and their mean size, from one run of the model per image.

use serde::Serialize;

/// The figures of one mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct MaskFigures {
    /// The fraction of pixels set, 0 to 1.
    pub coverage: f64,
    /// Connected regions of set pixels (4-connected).
    pub regions: usize,
    /// Their mean size in pixels (0 without regions).
    pub mean_region_pixels: f64,
}

/// Sets `mask` to 1 where `probabilities` is above `threshold` (what the
/// processor's own mask is at that threshold).
pub fn mask_at(probabilities: &[f32], threshold: f32, mask: &mut Vec<u8>) {
    mask.clear();
    mask.extend(probabilities.iter().map(|p| u8::from(*p > threshold)));
}

/// The figures of an `height` x `width` 0/1 `mask`.
pub fn figures(mask: &[u8], height: usize, width: usize) -> MaskFigures {
    let set = mask.iter().filter(|m| **m != 0).count();
    let mut seen = vec![false; mask.len()];
    let mut stack = Vec::new();
    let mut regions = 0;
    for start in 0..mask.len().min(height * width) {
        if mask[start] == 0 || seen[start] {
            continue;
        }
        regions += 1;
        seen[start] = true;
        stack.push(start);
        while let Some(at) = stack.pop() {
            let (y, x) = (at / width, at % width);
            let mut visit = |next: usize| {
                if mask[next] != 0 && !seen[next] {
                    seen[next] = true;
                    stack.push(next);
                }
            };
            if x > 0 {
                visit(at - 1);
            }
            if x + 1 < width {
                visit(at + 1);
            }
            if y > 0 {
                visit(at - width);
            }
            if y + 1 < height {
                visit(at + width);
            }
        }
    }
    MaskFigures {
        coverage: set as f64 / mask.len().max(1) as f64,
        regions,
        mean_region_pixels: if regions == 0 {
            0.0
        } else {
            set as f64 / regions as f64
        },
    }
}

/// `FROM:TO:STEP` (e.g. `0.3:0.7:0.05`) or a list (`0.3,0.5`): thresholds
/// between 0 and 1.
pub fn parse_thresholds(text: &str) -> Result<Vec<f32>, String> {
    let number = |t: &str| {
        t.trim()
            .parse::<f32>()
            .map_err(|_| format!("--thresholds {text}: '{t}' is not a number"))
    };
    let values: Vec<f32> = match text.split(':').collect::<Vec<_>>().as_slice() {
        [from, to, step] => {
            let (from, to, step) = (number(from)?, number(to)?, number(step)?);
            if step.is_nan() || step <= 0.0 || to < from {
                return Err(format!(
                    "--thresholds {text}: write FROM:TO:STEP with FROM <= TO and STEP > 0"
                ));
            }
            let count = ((to - from) / step + 1e-4).floor() as usize + 1;
            (0..count.min(1000))
                .map(|i| ((from + step * i as f32) * 1e4).round() / 1e4)
                .collect()
        }
        [_] => text.split(',').map(number).collect::<Result<_, _>>()?,
        _ => return Err(format!("--thresholds {text}: write FROM:TO:STEP or T1,T2")),
    };
    match values
        .iter()
        .find(|t| !(0.0..1.0).contains(*t) || **t == 0.0)
    {
        Some(bad) => Err(format!(
            "--thresholds {text}: {bad} is not a probability between 0 and 1 (exclusive)"
        )),
        None => Ok(values),
    }
}

#[cfg(test)]
mod tests {
    use super::{figures, parse_thresholds};

    #[test]
    fn regions_are_4_connected_and_counted_with_their_mean_size() {
        #[rustfmt::skip]
        let mask = [
            1, 1, 0, 0,
            0, 1, 0, 1,
            0, 0, 1, 0,
        ];
        let f = figures(&mask, 3, 4);
        assert_eq!(f.regions, 3, "a diagonal neighbour is another region");
        assert!((f.coverage - 5.0 / 12.0).abs() < 1e-12);
        assert!((f.mean_region_pixels - 5.0 / 3.0).abs() < 1e-12);
        assert_eq!(figures(&[0; 6], 2, 3).regions, 0);
    }

    #[test]
    fn thresholds_are_a_range_or_a_list_of_probabilities() {
        assert_eq!(
            parse_thresholds("0.3:0.7:0.2").unwrap(),
            vec![0.3, 0.5, 0.7]
        );
        assert_eq!(parse_thresholds("0.25,0.5").unwrap(), vec![0.25, 0.5]);
        assert!(
            parse_thresholds("0:1:0.5")
                .unwrap_err()
                .contains("between 0 and 1")
        );
        assert!(parse_thresholds("0.7:0.3:0.1").is_err());
    }
}
