//! One exported decoder and its forward pass over a batch of sequences.

use std::path::Path;

use anyhow::{bail, Context, Result};
pub use maas_protocol::DecoderSpec;
use tch::{CModule, Device, IValue, Kind, Tensor};

/// A sequence's cache: `[layers, 2, heads, tokens, head_size]`.
pub type Cache = Tensor;

/// A loaded decoder.
pub struct CachedDecoder {
    module: CModule,
    /// Its shape.
    pub spec: DecoderSpec,
    device: Device,
}

impl CachedDecoder {
    /// Loads `model.pt` of an export, with its spec.
    pub fn load(path: &Path, spec: DecoderSpec, device: Device) -> Result<CachedDecoder> {
        let mut module = CModule::load_on_device(path, device)
            .with_context(|| format!("loading decoder {} on {device:?}", path.display()))?;
        module.set_eval();
        Ok(CachedDecoder { module, spec, device })
    }

    /// Runs the prompt `tokens` of one sequence; returns the logits of its
    /// last position and its cache.
    pub fn prefill(&self, tokens: &[i64]) -> Result<(Vec<f32>, Cache)> {
        let t = tokens.len() as i64;
        let ids = Tensor::from_slice(tokens).view([1, t]).to(self.device);
        let positions = Tensor::arange(t, (Kind::Int64, self.device)).view([1, t]);
        let past = Tensor::zeros(self.past_shape(1, 0), (Kind::Float, self.device));
        let mask = Tensor::ones([1, t], (Kind::Int64, self.device));
        let (logits, present) = self.forward(ids, positions, past, mask)?;
        Ok((to_vec(&logits.get(0).get(t - 1))?, present.select(2, 0)))
    }

    /// Runs the prompts of several sequences at once, right-padded to the
    /// longest and masked; returns each one's last logits and cache, as
    /// [`CachedDecoder::prefill`] would alone.
    pub fn prefill_many(&self, prompts: &[&[i64]]) -> Result<Vec<(Vec<f32>, Cache)>> {
        if let [prompt] = prompts {
            return Ok(vec![self.prefill(prompt)?]);
        }
        let batch = prompts.len() as i64;
        let longest = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
        let mut ids = vec![0i64; prompts.len() * longest];
        let mut mask = vec![0i64; prompts.len() * longest];
        for (row, prompt) in prompts.iter().enumerate() {
            ids[row * longest..row * longest + prompt.len()].copy_from_slice(prompt);
            mask[row * longest..row * longest + prompt.len()].fill(1);
        }
        let t = longest as i64;
        let ids = Tensor::from_slice(&ids).view([batch, t]).to(self.device);
        let mask = Tensor::from_slice(&mask).view([batch, t]).to(self.device);
        let positions = Tensor::arange(t, (Kind::Int64, self.device)).view([1, t]).expand([batch, t], false);
        let past = Tensor::zeros(self.past_shape(batch, 0), (Kind::Float, self.device));
        let (logits, present) = self.forward(ids, positions, past, mask)?;
        let mut prefilled = Vec::with_capacity(prompts.len());
        for (row, prompt) in prompts.iter().enumerate() {
            let length = prompt.len() as i64;
            let last = to_vec(&logits.get(row as i64).get(length - 1))?;
            prefilled.push((last, present.select(2, row as i64).narrow(3, 0, length).contiguous()));
        }
        Ok(prefilled)
    }

    /// Runs one new token of each sequence (`last[b]`, after the `caches[b]`
    /// it has); returns each one's logits and grows each cache by the
    /// token's keys and values.
    pub fn step(&self, last: &[i64], caches: &mut [Cache]) -> Result<Vec<Vec<f32>>> {
        let batch = last.len() as i64;
        let lengths: Vec<i64> = caches.iter().map(|c| c.size()[3]).collect();
        let longest = lengths.iter().copied().max().unwrap_or(0);
        let padded: Vec<Tensor> = caches
            .iter()
            .zip(&lengths)
            .map(|(cache, &length)| match longest - length {
                0 => cache.shallow_clone(),
                pad => Tensor::cat(
                    &[cache.shallow_clone(), cache.new_zeros(self.cache_shape(pad), (Kind::Float, self.device))],
                    3,
                ),
            })
            .collect();
        let past = Tensor::stack(&padded, 2);
        let mut mask = vec![0i64; (batch * (longest + 1)) as usize];
        for (b, &length) in lengths.iter().enumerate() {
            let row = &mut mask[b * (longest + 1) as usize..(b + 1) * (longest + 1) as usize];
            row[..length as usize].fill(1);
            row[longest as usize] = 1;
        }
        let mask = Tensor::from_slice(&mask).view([batch, longest + 1]).to(self.device);
        let ids = Tensor::from_slice(last).view([batch, 1]).to(self.device);
        let positions = Tensor::from_slice(&lengths).view([batch, 1]).to(self.device);
        let (logits, present) = self.forward(ids, positions, past, mask)?;
        let new_slots = present.narrow(4, longest, 1);
        let mut rows = Vec::with_capacity(caches.len());
        for (b, cache) in caches.iter_mut().enumerate() {
            *cache = Tensor::cat(&[cache.shallow_clone(), new_slots.select(2, b as i64)], 3);
            rows.push(to_vec(&logits.get(b as i64).get(0))?);
        }
        Ok(rows)
    }

    fn forward(&self, ids: Tensor, positions: Tensor, past: Tensor, mask: Tensor) -> Result<(Tensor, Tensor)> {
        let _guard = tch::no_grad_guard();
        let inputs = [IValue::Tensor(ids), IValue::Tensor(positions), IValue::Tensor(past), IValue::Tensor(mask)];
        let output = self.module.forward_is(&inputs).context("running the decoder")?;
        match output {
            IValue::Tuple(mut parts) if parts.len() == 2 => match (parts.remove(0), parts.remove(0)) {
                (IValue::Tensor(logits), IValue::Tensor(present)) => Ok((logits, present)),
                _ => bail!("the decoder must return (logits, present) tensors"),
            },
            _ => bail!("the decoder must return a (logits, present) tuple"),
        }
    }

    fn past_shape(&self, batch: i64, tokens: i64) -> [i64; 6] {
        let s = &self.spec;
        [i64::from(s.layers), 2, batch, i64::from(s.heads), tokens, i64::from(s.head_size)]
    }

    fn cache_shape(&self, tokens: i64) -> [i64; 5] {
        let s = &self.spec;
        [i64::from(s.layers), 2, i64::from(s.heads), tokens, i64::from(s.head_size)]
    }
}

fn to_vec(logits: &Tensor) -> Result<Vec<f32>> {
    Vec::<f32>::try_from(logits.to_kind(Kind::Float).to(Device::Cpu).contiguous()).context("reading logits")
}
