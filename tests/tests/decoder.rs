//! The node's native decoder loop with real LibTorch: a tiny GPT-2 with
//! random weights exported with its key/value cache
//! (`scripts/export_decoder.py`), run by the continuous-batching scheduler.
//! Sequences that join while others run, and leave as they end, each get
//! exactly the tokens Hugging Face's greedy `generate` gives for them
//! alone; steps batch several sequences; the cache budget holds.

use std::collections::HashMap;
use std::path::Path;

use maas_node::decoder::{CachedDecoder, DecoderSpec, Event, Finish, Sampling, Scheduler, SequenceRequest};
use maas_tests::cluster::{workspace_root, TempDir};
use maas_tests::engine::build_tiny_llm;
use maas_tests::python;
use serde_json::Value;

const NEW_TOKENS: usize = 24;

/// Prompts of different lengths, their token ids and Hugging Face's greedy
/// continuation of each, computed alone.
const REFERENCE: &str = r#"
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
prompts = ["The sea is", "Hello, how are you today?", "One, two, three, four, five, six, seven, eight, nine, ten.",
           "A language model reads a prompt as a list of tokens and predicts the next token, one step at a time."]
out = []
for prompt in prompts:
    ids = tokenizer(prompt)["input_ids"]
    with torch.no_grad():
        new = model.generate(torch.tensor([ids]), max_new_tokens=int(sys.argv[2]), min_new_tokens=int(sys.argv[2]),
                             do_sample=False, pad_token_id=model.config.eos_token_id)[0, len(ids):].tolist()
    out.append({"prompt": ids, "greedy": new})
print(json.dumps(out))
"#;

/// A prompt's token ids and Hugging Face's greedy continuation of it.
type Reference = (Vec<i64>, Vec<i64>);

/// Builds and exports the tiny decoder; returns its folder and references.
fn export(dir: &Path) -> (std::path::PathBuf, Vec<Reference>) {
    let hf = dir.join("hf");
    build_tiny_llm(&hf).unwrap();
    let exported = dir.join("decoder");
    let script = workspace_root().join("scripts/export_decoder.py");
    python::run(&[script.to_str().unwrap(), hf.to_str().unwrap(), exported.to_str().unwrap()]);
    let printed = python::run(&["-c", REFERENCE, hf.to_str().unwrap(), &NEW_TOKENS.to_string()]);
    let references: Vec<Value> = serde_json::from_str(printed.trim()).unwrap();
    let ids = |v: &Value| v.as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).collect::<Vec<i64>>();
    (exported, references.iter().map(|r| (ids(&r["prompt"]), ids(&r["greedy"]))).collect())
}

fn load(exported: &Path) -> CachedDecoder {
    let spec: DecoderSpec =
        serde_json::from_str(&std::fs::read_to_string(exported.join("decoder.json")).unwrap()).unwrap();
    CachedDecoder::load(&exported.join("model.pt"), spec, tch::Device::Cpu).unwrap()
}

fn request(id: u64, prompt: &[i64], max_tokens: usize) -> SequenceRequest {
    SequenceRequest { id, prompt: prompt.to_vec(), max_tokens, sampling: Sampling::greedy() }
}

/// Iterates until idle, collecting each sequence's tokens and end.
fn run(scheduler: &mut Scheduler, tokens: &mut HashMap<u64, Vec<i64>>, ends: &mut HashMap<u64, Finish>) {
    while !scheduler.is_idle() {
        collect(scheduler.iterate().unwrap(), tokens, ends);
    }
}

fn collect(events: Vec<Event>, tokens: &mut HashMap<u64, Vec<i64>>, ends: &mut HashMap<u64, Finish>) {
    for event in events {
        match event {
            Event::Token { id, token, .. } => tokens.entry(id).or_default().push(token),
            Event::Done { id, finish, completion_tokens } => {
                assert_eq!(tokens.get(&id).map_or(0, Vec::len), completion_tokens);
                assert!(ends.insert(id, finish).is_none(), "sequence {id} ended twice");
            }
            Event::Failed { id, message } => panic!("sequence {id} failed: {message}"),
        }
    }
}

#[test]
fn sequences_joining_and_leaving_each_get_their_greedy_tokens() {
    tch::set_num_threads(1);
    let dir = TempDir::new("decoder");
    let (exported, references) = export(dir.path());
    let decoder = load(&exported);
    let per_token = decoder.spec.cache_bytes_per_token();
    let mut scheduler = Scheduler::new(decoder, 1 << 30, 16);
    let (mut tokens, mut ends) = (HashMap::new(), HashMap::new());

    // Two start; after a few steps two more join, one of them asking fewer tokens.
    scheduler.submit(request(0, &references[0].0, NEW_TOKENS)).unwrap();
    scheduler.submit(request(1, &references[1].0, NEW_TOKENS)).unwrap();
    for _ in 0..5 {
        collect(scheduler.iterate().unwrap(), &mut tokens, &mut ends);
    }
    scheduler.submit(request(2, &references[2].0, NEW_TOKENS)).unwrap();
    scheduler.submit(request(3, &references[3].0, 7)).unwrap();
    run(&mut scheduler, &mut tokens, &mut ends);

    for (id, (_, greedy)) in references.iter().enumerate() {
        let wanted = if id == 3 { &greedy[..7] } else { &greedy[..] };
        assert_eq!(tokens[&(id as u64)], wanted, "sequence {id} differs from Hugging Face's greedy tokens");
        assert_eq!(ends[&(id as u64)], Finish::Length);
    }
    assert_eq!(scheduler.step_sizes.keys().max(), Some(&4), "steps: {:?}", scheduler.step_sizes);
    assert!(
        scheduler.step_sizes.contains_key(&2) && scheduler.step_sizes.contains_key(&3),
        "{:?}",
        scheduler.step_sizes
    );
    assert_eq!(scheduler.reserved_bytes(), 0, "a finished sequence kept its cache");

    // The budget: room for two sequences of this size at once (a step
    // holds each one's padded cache twice: the past and the grown present).
    let (prompt, _) = &references[0];
    let one = 2 * (prompt.len() + 10) as u64 * per_token;
    let mut scheduler = Scheduler::new(load(&exported), 2 * one, 16);
    for id in 0..3 {
        scheduler.submit(request(id, prompt, 10)).unwrap();
    }
    let (mut tokens, mut ends) = (HashMap::new(), HashMap::new());
    collect(scheduler.iterate().unwrap(), &mut tokens, &mut ends);
    assert_eq!(scheduler.running(), 2, "the third must wait for room");
    assert!(scheduler.reserved_bytes() <= 2 * one);
    // Cancelling one frees its room at once: the third starts next iteration.
    assert!(scheduler.cancel(0));
    assert_eq!(scheduler.reserved_bytes(), one);
    collect(scheduler.iterate().unwrap(), &mut tokens, &mut ends);
    assert_eq!(scheduler.running(), 2);
    run(&mut scheduler, &mut tokens, &mut ends);
    assert_eq!(ends.len(), 2, "the cancelled sequence never ends: {ends:?}");

    // What can never run is refused with the reason.
    let too_big = scheduler.submit(request(9, prompt, 2048)).unwrap_err();
    assert!(too_big.contains("context"), "{too_big}");
    let over_budget = Scheduler::new(load(&exported), one - 1, 16).submit(request(9, prompt, 10)).unwrap_err();
    assert!(over_budget.contains("budget"), "{over_budget}");
    let outside = scheduler.submit(request(9, &[100_000], 1)).unwrap_err();
    assert!(outside.contains("vocabulary"), "{outside}");
}
