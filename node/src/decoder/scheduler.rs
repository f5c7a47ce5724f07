//! Continuous batching of generated sequences under a cache budget.
//!
//! Every [`Scheduler::iterate`] first admits waiting sequences, oldest
//! first, while the caches they may grow to (prompt plus their most
//! tokens, padded to the longest as a step pads them) fit the budget beside
//! those running, and prefills them together; then it runs one step of
//! every running sequence together. A sequence leaves as soon
//! as it ends (its end-of-sequence token, its token limit, or a
//! cancellation) and its cache and reservation go with it. Nothing is
//! reserved twice and nothing runs past the budget: a sequence that could
//! never fit is refused when submitted.

use std::collections::VecDeque;

use anyhow::Result;

use super::model::{Cache, CachedDecoder, DecoderSpec};
use super::sampling::{pick, Draws, Sampling};

/// A sequence to generate.
#[derive(Debug, Clone)]
pub struct SequenceRequest {
    /// The caller's id for it, unique among those it runs.
    pub id: u64,
    /// Prompt token ids.
    pub prompt: Vec<i64>,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// How to pick tokens.
    pub sampling: Sampling,
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// It produced an end-of-sequence token.
    Stop,
    /// It reached its token limit.
    Length,
}

/// What an iteration produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A generated token.
    Token {
        /// The sequence.
        id: u64,
        /// The token id.
        token: i64,
        /// Sequences in the step that produced it (for a first token, the
        /// sequences prefilled together).
        step_size: usize,
        /// Whether the sequence was the first of its step (a prefill leads none).
        leads_step: bool,
        /// Nanoseconds the step's forward pass took.
        step_ns: u64,
    },
    /// The sequence ended; its cache is freed.
    Done {
        /// The sequence.
        id: u64,
        /// Why.
        finish: Finish,
        /// Tokens it generated.
        completion_tokens: usize,
    },
    /// The model failed on the sequence's prompt; it is dropped.
    Failed {
        /// The sequence.
        id: u64,
        /// LibTorch's message.
        message: String,
    },
}

struct Running {
    request: SequenceRequest,
    cache: Cache,
    generated: Vec<i64>,
    draws: Draws,
}

/// The sequences of one decoder.
pub struct Scheduler {
    model: CachedDecoder,
    budget: u64,
    /// Most sequences stepped together.
    max_running: usize,
    waiting: VecDeque<SequenceRequest>,
    running: Vec<Running>,
    /// Steps run so far, by the sequences in them.
    pub step_sizes: std::collections::BTreeMap<usize, u64>,
}

impl Scheduler {
    /// A scheduler for `model` whose caches may take `budget` bytes, stepping
    /// at most `max_running` sequences together.
    pub fn new(model: CachedDecoder, budget: u64, max_running: usize) -> Scheduler {
        Scheduler {
            model,
            budget,
            max_running: max_running.max(1),
            waiting: VecDeque::new(),
            running: Vec::new(),
            step_sizes: std::collections::BTreeMap::new(),
        }
    }

    /// The decoder's shape.
    pub fn spec(&self) -> &DecoderSpec {
        &self.model.spec
    }

    /// Sequences waiting for room.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The bytes a sequence's cache may grow to.
    ///
    /// A step pads every running cache to the longest and stacks them, and
    /// the model returns them grown by one token: the step holds twice the
    /// padded caches. So sequences together take their count times the
    /// longest one's whole length (prompt plus most new tokens), twice.
    fn cost(&self, count: usize, longest_tokens: usize) -> u64 {
        (count as u64).saturating_mul(longest_tokens as u64).saturating_mul(self.model.spec.cache_bytes_per_token() * 2)
    }

    fn tokens(request: &SequenceRequest) -> usize {
        request.prompt.len() + request.max_tokens
    }

    /// What the running sequences take, with `extra` beside them.
    fn cost_with(&self, extra: Option<&SequenceRequest>) -> u64 {
        let running = self.running.iter().map(|r| &r.request);
        let longest = running.chain(extra).map(Self::tokens).max().unwrap_or(0);
        self.cost(self.running.len() + usize::from(extra.is_some()), longest)
    }

    /// Queues `request`, or refuses it with the reason when it can never run.
    pub fn submit(&mut self, request: SequenceRequest) -> Result<(), String> {
        let context = self.model.spec.context_length as usize;
        if request.prompt.is_empty() {
            return Err("the prompt has no tokens".into());
        }
        if request.max_tokens == 0 {
            return Err("max_tokens must be at least 1".into());
        }
        if request.prompt.len() + request.max_tokens > context {
            return Err(format!(
                "the prompt's {} tokens and up to {} new ones exceed the model's context of {context} tokens",
                request.prompt.len(),
                request.max_tokens
            ));
        }
        let vocab = i64::from(self.model.spec.vocab_size);
        if let Some(bad) = request.prompt.iter().find(|&&t| t < 0 || t >= vocab) {
            return Err(format!("token id {bad} is outside the vocabulary of {vocab}"));
        }
        let needed = self.cost(1, Self::tokens(&request));
        if needed > self.budget {
            return Err(format!(
                "its cache of up to {needed} bytes exceeds the decoder's budget of {} bytes",
                self.budget
            ));
        }
        self.waiting.push_back(request);
        Ok(())
    }

    /// Drops sequence `id`, waiting or running; its cache is freed now.
    pub fn cancel(&mut self, id: u64) -> bool {
        if let Some(at) = self.waiting.iter().position(|r| r.id == id) {
            self.waiting.remove(at);
            return true;
        }
        match self.running.iter().position(|r| r.request.id == id) {
            Some(at) => {
                self.running.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// Whether nothing waits or runs.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Sequences running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Bytes reserved by running sequences.
    pub fn reserved_bytes(&self) -> u64 {
        self.cost_with(None)
    }

    /// Admits what fits, prefills it, then steps every running sequence.
    pub fn iterate(&mut self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let admitted = self.admit();
        if !admitted.is_empty() {
            self.prefill(admitted, &mut events);
        }
        if self.running.is_empty() {
            return Ok(events);
        }
        let last: Vec<i64> =
            self.running.iter().map(|r| *r.generated.last().expect("a running sequence has a token")).collect();
        let mut caches: Vec<Cache> = self.running.iter().map(|r| r.cache.shallow_clone()).collect();
        let started = std::time::Instant::now();
        let rows = self.model.step(&last, &mut caches)?;
        let (size, step_ns) = (self.running.len(), started.elapsed().as_nanos() as u64);
        *self.step_sizes.entry(size).or_default() += 1;
        let mut still = Vec::with_capacity(self.running.len());
        let stepped = std::mem::take(&mut self.running).into_iter().zip(caches).zip(rows).enumerate();
        for (index, ((mut running, cache), logits)) in stepped {
            running.cache = cache;
            let token = pick(&logits, &running.request.sampling, &mut running.draws);
            match self.accept(&mut running, token, (size, index == 0, step_ns), &mut events) {
                Some(done) => events.push(done),
                None => still.push(running),
            }
        }
        self.running = still;
        Ok(events)
    }

    /// Takes the waiting sequences that fit beside those running, oldest
    /// first.
    fn admit(&mut self) -> Vec<SequenceRequest> {
        let mut admitted: Vec<SequenceRequest> = Vec::new();
        while let Some(next) = self.waiting.front() {
            let count = self.running.len() + admitted.len() + 1;
            let running = self.running.iter().map(|r| &r.request).chain(&admitted);
            let longest = running.chain([next]).map(Self::tokens).max().unwrap_or(0);
            if self.cost(count, longest) > self.budget || count > self.max_running {
                break;
            }
            admitted.push(self.waiting.pop_front().expect("looked at just now"));
        }
        admitted
    }

    /// Prefills the admitted sequences together and takes each one's first
    /// token. If the batch fails, each is prefilled alone, so that a prompt
    /// the model fails on fails its own sequence only.
    fn prefill(&mut self, admitted: Vec<SequenceRequest>, events: &mut Vec<Event>) {
        let started = std::time::Instant::now();
        let prompts: Vec<&[i64]> = admitted.iter().map(|r| r.prompt.as_slice()).collect();
        let prefilled: Vec<Result<(Vec<f32>, Cache)>> = match self.model.prefill_many(&prompts) {
            Ok(all) => all.into_iter().map(Ok).collect(),
            Err(_) if admitted.len() > 1 => prompts.iter().map(|prompt| self.model.prefill(prompt)).collect(),
            Err(error) => vec![Err(error)],
        };
        let step = (admitted.len(), false, started.elapsed().as_nanos() as u64);
        for (request, result) in admitted.into_iter().zip(prefilled) {
            let (logits, cache) = match result {
                Ok(prefilled) => prefilled,
                Err(error) => {
                    events.push(Event::Failed { id: request.id, message: format!("{error:#}") });
                    continue;
                }
            };
            let mut running =
                Running { draws: Draws::new(request.sampling.seed), request, cache, generated: Vec::new() };
            let token = pick(&logits, &running.request.sampling, &mut running.draws);
            match self.accept(&mut running, token, step, events) {
                Some(done) => events.push(done),
                None => self.running.push(running),
            }
        }
    }

    /// Takes `token` for `running`: an event for it, and the end of the
    /// sequence when it ends here.
    fn accept(
        &self,
        running: &mut Running,
        token: i64,
        (step_size, leads_step, step_ns): (usize, bool, u64),
        events: &mut Vec<Event>,
    ) -> Option<Event> {
        let id = running.request.id;
        if self.model.spec.eos_token_ids.iter().any(|&eos| i64::from(eos) == token) {
            return Some(Event::Done { id, finish: Finish::Stop, completion_tokens: running.generated.len() });
        }
        running.generated.push(token);
        events.push(Event::Token { id, token, step_size, leads_step, step_ns });
        (running.generated.len() >= running.request.max_tokens).then_some(Event::Done {
            id,
            finish: Finish::Length,
            completion_tokens: running.generated.len(),
        })
    }
}
