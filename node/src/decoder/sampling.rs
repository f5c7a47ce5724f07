//! Choosing the next token from a sequence's logits.

/// How a sequence picks its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// 0 (or less) for greedy decoding; otherwise logits are divided by it.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the most likely tokens whose probabilities sum to `top_p` (1: all).
    pub top_p: f32,
    /// The seed of the sequence's random draws.
    pub seed: u64,
}

impl Sampling {
    /// Greedy decoding.
    pub fn greedy() -> Sampling {
        Sampling { temperature: 0.0, top_k: 0, top_p: 1.0, seed: 0 }
    }
}

/// A sequence's random source: SplitMix64, seeded per sequence, so a seeded
/// request draws the same tokens whatever else runs beside it.
#[derive(Debug, Clone)]
pub struct Draws(u64);

impl Draws {
    /// Draws from `seed`.
    pub fn new(seed: u64) -> Draws {
        Draws(seed)
    }

    /// A uniform number in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The token `sampling` picks from `logits`.
pub fn pick(logits: &[f32], sampling: &Sampling, draws: &mut Draws) -> i64 {
    if sampling.temperature <= 0.0 || logits.len() < 2 {
        return argmax(logits);
    }
    let mut ranked: Vec<(usize, f32)> = logits.iter().copied().enumerate().filter(|(_, l)| l.is_finite()).collect();
    if ranked.is_empty() {
        return argmax(logits);
    }
    ranked.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    if sampling.top_k > 0 {
        ranked.truncate(sampling.top_k);
    }
    let top = ranked[0].1;
    let mut weights: Vec<f64> = ranked.iter().map(|(_, l)| (((l - top) / sampling.temperature) as f64).exp()).collect();
    let total: f64 = weights.iter().sum();
    if sampling.top_p < 1.0 {
        let mut kept = 0.0;
        let mut cut = weights.len();
        for (index, weight) in weights.iter().enumerate() {
            kept += weight / total;
            if kept >= f64::from(sampling.top_p) {
                cut = index + 1;
                break;
            }
        }
        weights.truncate(cut);
    }
    let total: f64 = weights.iter().sum();
    let mut target = draws.next() * total;
    for (index, weight) in weights.iter().enumerate() {
        target -= weight;
        if target <= 0.0 {
            return ranked[index].0 as i64;
        }
    }
    ranked[weights.len() - 1].0 as i64
}

fn argmax(logits: &[f32]) -> i64 {
    let mut best = 0;
    for (index, value) in logits.iter().enumerate() {
        if value.total_cmp(&logits[best]).is_gt() {
            best = index;
        }
    }
    best as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest_logit() {
        let mut draws = Draws::new(1);
        assert_eq!(pick(&[0.1, 3.0, -1.0, 2.9], &Sampling::greedy(), &mut draws), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_a_seed_repeats_its_draws() {
        let logits = [0.5, 0.4, 0.3, 0.2, 0.1];
        let sampling = Sampling { temperature: 1.0, top_k: 1, top_p: 1.0, seed: 3 };
        assert_eq!(pick(&logits, &sampling, &mut Draws::new(3)), 0);
        let free = Sampling { temperature: 1.0, top_k: 0, top_p: 1.0, seed: 7 };
        let run = |seed| {
            let mut draws = Draws::new(seed);
            (0..50).map(|_| pick(&logits, &free, &mut draws)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert!(run(7).iter().any(|&t| t != 0), "sampling never left the top token");
    }

    #[test]
    fn top_p_keeps_only_the_likely_head() {
        // Token 0 holds almost all the mass: top_p 0.5 keeps it alone.
        let logits = [10.0, 0.0, 0.0, 0.0];
        let sampling = Sampling { temperature: 1.0, top_k: 0, top_p: 0.5, seed: 0 };
        let mut draws = Draws::new(0);
        assert!((0..100).all(|_| pick(&logits, &sampling, &mut draws) == 0));
    }
}
