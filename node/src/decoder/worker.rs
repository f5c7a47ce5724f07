//! The thread that runs one decoder version: it owns the loaded model and
//! its [`Scheduler`], takes new sequences from a channel between steps, and
//! sends each sequence's tokens to the stream that asked for it.
//!
//! A sequence whose stream has gone (the client went away, the coordinator
//! dropped the stream) is cancelled before the next step, so its cache is
//! freed at once. When the version is unloaded the channel closes: the
//! sequences under way still finish, then the thread ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use maas_protocol::{DecoderSpec, FinishReason, GenerateEvent, GenerateRequest, NodeError};
use tch::Device;
use tokio::sync::{mpsc, oneshot};

use super::model::CachedDecoder;
use super::sampling::Sampling;
use super::scheduler::{Event, Finish, Scheduler, SequenceRequest};

/// Where a sequence's events go.
pub type EventSender = mpsc::UnboundedSender<GenerateEvent>;

/// A sequence handed to the decoder thread.
struct Submitted {
    request: GenerateRequest,
    events: EventSender,
}

/// What a decoder thread needs to start.
pub struct DecoderSetup {
    /// Model name, for logs and errors.
    pub model: String,
    /// Version, for logs.
    pub version: u64,
    /// The exported `model.pt`.
    pub path: PathBuf,
    /// Its shape and cache budget.
    pub spec: DecoderSpec,
    /// Device to run on.
    pub device: Device,
    /// Most sequences stepped together.
    pub max_running: usize,
    /// Most sequences waiting for room before new ones are refused.
    pub max_waiting: usize,
}

/// The handle of a running decoder thread: dropping it lets the thread end
/// once its sequences have.
pub struct DecoderHandle {
    submit: flume::Sender<Submitted>,
    /// Bytes of cache reserved by running sequences now.
    pub cache_reserved: Arc<AtomicU64>,
    /// Sequences running now.
    pub running: Arc<AtomicU64>,
    /// Whether the thread still runs (it finishes its sequences after the
    /// handle is dropped, holding its memory until then).
    pub alive: Arc<AtomicBool>,
}

/// Marks the thread ended when it ends, however it ends.
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl DecoderHandle {
    /// Queues a generation; its events arrive on the returned channel.
    pub fn generate(&self, request: GenerateRequest) -> Result<mpsc::UnboundedReceiver<GenerateEvent>, NodeError> {
        let (events, receiver) = mpsc::unbounded_channel();
        self.submit
            .send(Submitted { request, events })
            .map_err(|_| NodeError::Internal { message: "the decoder has stopped".into() })?;
        Ok(receiver)
    }
}

/// Loads the decoder and warms it up: two prompts of different lengths,
/// then one step of both together, checking that the logits and caches
/// have the shape the spec declares (a model that does not would fail or
/// panic on its first real batch instead).
pub fn load_and_warm(setup: &DecoderSetup) -> Result<CachedDecoder> {
    let _no_grad = tch::no_grad_guard();
    let decoder = CachedDecoder::load(&setup.path, setup.spec.clone(), setup.device)?;
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
        let vocab = setup.spec.vocab_size as usize;
        let (short_logits, short) = decoder.prefill(&[0]).context("warming up the decoder's prefill")?;
        let (long_logits, long) = decoder.prefill(&[0, 0, 0]).context("warming up the decoder's prefill")?;
        let rows = decoder.step(&[0, 0], &mut [short, long]).context("warming up the decoder's step")?;
        for logits in [&short_logits, &long_logits].into_iter().chain(&rows) {
            anyhow::ensure!(
                logits.len() == vocab,
                "the decoder returns {} logits per token, but its spec declares a vocabulary of {vocab}",
                logits.len()
            );
        }
        Ok(())
    }));
    match checked {
        Ok(result) => result.map(|()| decoder),
        Err(_) => anyhow::bail!("the decoder's outputs do not have the shape its spec declares"),
    }
}

/// Starts the thread; `loaded` receives `Ok` once the model is loaded and
/// warm, or the reason it could not be.
pub fn spawn(setup: DecoderSetup, loaded: oneshot::Sender<Result<()>>) -> Result<DecoderHandle> {
    let (submit, submitted) = flume::unbounded();
    let handle = DecoderHandle {
        submit,
        cache_reserved: Arc::new(AtomicU64::new(0)),
        running: Arc::new(AtomicU64::new(0)),
        alive: Arc::new(AtomicBool::new(true)),
    };
    let alive = Alive(handle.alive.clone());
    let (reserved, running) = (handle.cache_reserved.clone(), handle.running.clone());
    std::thread::Builder::new()
        .name(format!("{}-v{}-decoder", setup.model, setup.version))
        .spawn(move || {
            let _alive = alive;
            let _no_grad = tch::no_grad_guard();
            let decoder = match load_and_warm(&setup) {
                Ok(decoder) => {
                    let _ = loaded.send(Ok(()));
                    decoder
                }
                Err(error) => {
                    let _ = loaded.send(Err(error));
                    return;
                }
            };
            let scheduler = Scheduler::new(decoder, setup.spec.cache_bytes, setup.max_running);
            Loop { setup, scheduler, streams: HashMap::new(), next_id: 0, reserved, running }.run(submitted);
        })
        .context("spawning a decoder thread")?;
    Ok(handle)
}

struct Loop {
    setup: DecoderSetup,
    scheduler: Scheduler,
    streams: HashMap<u64, EventSender>,
    next_id: u64,
    reserved: Arc<AtomicU64>,
    running: Arc<AtomicU64>,
}

impl Loop {
    fn run(mut self, submitted: flume::Receiver<Submitted>) {
        let mut open = true;
        loop {
            if self.scheduler.is_idle() {
                if !open {
                    break;
                }
                match submitted.recv() {
                    Ok(next) => self.admit(next),
                    Err(_) => break,
                }
            }
            loop {
                match submitted.try_recv() {
                    Ok(next) => self.admit(next),
                    Err(flume::TryRecvError::Empty) => break,
                    Err(flume::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            self.cancel_abandoned();
            if !self.scheduler.is_idle() {
                self.step();
            }
            self.report();
        }
        tracing::info!(model = %self.setup.model, version = self.setup.version, "decoder stopped");
    }

    /// Publishes the cache reserved and the sequences running.
    fn report(&self) {
        let (reserved, running) = (self.scheduler.reserved_bytes(), self.scheduler.running() as u64);
        if self.reserved.swap(reserved, Ordering::Relaxed) != reserved
            || self.running.swap(running, Ordering::Relaxed) != running
        {
            crate::metrics::set_decoder_load(&self.setup.model, self.setup.version, reserved, running);
        }
    }

    /// Queues a new sequence, or answers why it cannot run.
    fn admit(&mut self, Submitted { request, events }: Submitted) {
        if self.scheduler.waiting() >= self.setup.max_waiting {
            let _ = events.send(GenerateEvent::Failed { error: NodeError::Overloaded });
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let sampling = Sampling {
            temperature: request.sampling.temperature,
            top_k: request.sampling.top_k as usize,
            top_p: request.sampling.top_p,
            seed: request.sampling.seed,
        };
        let sequence = SequenceRequest {
            id,
            prompt: request.prompt.iter().map(|&t| i64::from(t)).collect(),
            max_tokens: request.max_tokens as usize,
            sampling,
        };
        match self.scheduler.submit(sequence) {
            Ok(()) => {
                self.streams.insert(id, events);
            }
            Err(reason) => {
                let _ = events.send(GenerateEvent::Failed { error: NodeError::InvalidInput { message: reason } });
            }
        }
    }

    /// Cancels the sequences nobody reads any more, freeing their caches.
    fn cancel_abandoned(&mut self) {
        let gone: Vec<u64> = self.streams.iter().filter(|(_, s)| s.is_closed()).map(|(&id, _)| id).collect();
        for id in gone {
            self.streams.remove(&id);
            self.scheduler.cancel(id);
            tracing::debug!(model = %self.setup.model, sequence = id, "generation cancelled; its cache is freed");
        }
    }

    /// Runs one iteration and sends its events; a failed step (an error,
    /// or a panic inside LibTorch's bindings) ends every running sequence
    /// with the error, and the thread goes on with the next ones.
    fn step(&mut self) {
        let iterated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.scheduler.iterate()));
        let failure = match iterated {
            Ok(Ok(events)) => return self.send(events),
            Ok(Err(error)) => format!("{error:#}"),
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the decoder panicked".into()),
        };
        let message = first_line(&failure);
        tracing::error!(model = %self.setup.model, error = %failure, "decoder step failed");
        for (id, stream) in self.streams.drain() {
            self.scheduler.cancel(id);
            let failed = NodeError::ModelFailed { model: self.setup.model.clone(), message: message.clone() };
            let _ = stream.send(GenerateEvent::Failed { error: failed });
        }
    }

    /// Sends each event to its sequence's stream.
    fn send(&mut self, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Token { id, token, step_size, leads_step, step_ns } => {
                    if let Some(stream) = self.streams.get(&id) {
                        let token = GenerateEvent::Token {
                            token: token as u32,
                            step_size: step_size as u32,
                            leads_step,
                            step_ns,
                        };
                        let _ = stream.send(token);
                    }
                }
                Event::Done { id, finish, completion_tokens } => {
                    if let Some(stream) = self.streams.remove(&id) {
                        let finish = match finish {
                            Finish::Stop => FinishReason::Stop,
                            Finish::Length => FinishReason::Length,
                        };
                        let _ =
                            stream.send(GenerateEvent::Done { finish, completion_tokens: completion_tokens as u32 });
                    }
                }
                Event::Failed { id, message } => {
                    tracing::warn!(model = %self.setup.model, sequence = id, error = %message, "prefill failed");
                    if let Some(stream) = self.streams.remove(&id) {
                        let model = self.setup.model.clone();
                        let error = NodeError::ModelFailed { model, message: first_line(&message) };
                        let _ = stream.send(GenerateEvent::Failed { error });
                    }
                }
            }
        }
    }
}

/// The useful line of a LibTorch error, without its C++ stack trace.
fn first_line(message: &str) -> String {
    let message = message.split("\nException raised from").next().unwrap_or(message);
    message.lines().find(|line| !line.trim().is_empty()).unwrap_or("the decoder failed").trim().to_string()
}
