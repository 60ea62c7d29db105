//! The ONNX Runtime backend against real models and the real ONNX Runtime 1.31.1 library:
//! all-MiniLM-L6-v2 int8 (any-model mode) and the generated tiny Llama-like decoder (decoder
//! mode). `scripts/test.sh` fetches and generates them and exports their paths.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use charter_backends::onnx::inputs::{Fill, InputData};
use charter_backends::onnx::{self, OnnxBackend, OnnxMode, OnnxOptions, SessionSharing};
use charter_backends::{Backend, ErrorKind, GenRequest, Prompt, Sampling, StopReason};

fn fixture(var: &str, cached: &str, fix: &str) -> PathBuf {
    let p = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.cache")
            .join(cached)
    });
    assert!(
        p.is_file(),
        "{} not found: run {fix} (scripts/test.sh does)",
        p.display()
    );
    p
}

fn minilm() -> PathBuf {
    fixture(
        "CHARTER_MINILM_ONNX",
        "models/all-MiniLM-L6-v2-int8.onnx",
        "scripts/fetch-minilm.sh",
    )
}

fn decoder_model() -> PathBuf {
    fixture(
        "CHARTER_ONNX_DECODER",
        "models/tiny-decoder/model.onnx",
        "scripts/make-onnx-decoder.py",
    )
}

fn options(model: PathBuf) -> OnnxOptions {
    let mut o = OnnxOptions::new(model);
    // scripts/test.sh exports the fetched library; otherwise the project cache is found.
    o.ort_lib = std::env::var_os("CHARTER_ORT_LIB").map(PathBuf::from);
    o.session.intra_op_threads = 1;
    o
}

fn tokens_request(prompt: Vec<u32>, max_tokens: u32, sampling: Sampling) -> GenRequest {
    GenRequest {
        prompt: Prompt::Tokens(prompt),
        max_tokens,
        ignore_eos: true,
        sampling,
    }
}

fn generate(backend: &OnnxBackend, req: &GenRequest) -> (Vec<u32>, usize, StopReason) {
    let mut stream = backend.new_stream().unwrap();
    let mut events = 0;
    let out = stream
        .generate(req, &mut |_| {
            events += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    if backend.mode() == OnnxMode::Decoder {
        assert_eq!(out.output_tokens as usize, out.output_token_ids.len());
    }
    (out.output_token_ids, events, out.stop_reason)
}

const PROMPT: [u32; 6] = [5, 17, 300, 42, 99, 7];

#[test]
fn any_mode_synthesises_minilm_inputs_from_metadata() {
    let mut o = options(minilm());
    o.batch = Some(2);
    o.seq_len = Some(16);
    let b = OnnxBackend::load(&o).unwrap();
    assert_eq!(b.mode(), OnnxMode::Any);
    let inputs = b.synthesised_inputs().unwrap();
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["input_ids", "attention_mask", "token_type_ids"]);
    for i in inputs {
        assert_eq!(i.shape, vec![2, 16], "{}", i.name);
        assert!(matches!(i.data, InputData::I64(_)), "{} is i64", i.name);
        assert_eq!(i.data.len(), 32);
    }
    assert_eq!(inputs[0].fill, Fill::TokenIds);
    assert!(inputs[0]
        .data
        .as_i64()
        .iter()
        .all(|&x| (0..100).contains(&x)));
    assert_eq!(inputs[1].fill, Fill::Ones);
    assert!(inputs[1].data.as_i64().iter().all(|&x| x == 1));
    assert_eq!(inputs[2].fill, Fill::Zeros);
    assert!(inputs[2].data.as_i64().iter().all(|&x| x == 0));

    // ONNX Runtime runs the model on exactly these shapes: batch 2 × 16 tokens × 384 dims.
    let mut session = onnx::open_session(b.runtime(), &o.model, &o.session).unwrap();
    let feed: Vec<_> = inputs
        .iter()
        .map(|i| (i.name.as_str(), i.value().unwrap()))
        .collect();
    let out = session.run(feed).unwrap();
    let (shape, data) = out[0].try_extract_tensor::<f32>().unwrap();
    assert_eq!(&shape[..], &[2, 16, 384]);
    assert!(data.iter().all(|x| x.is_finite()));
    drop(out);

    // One request = one inference call = one event, one "token", batch × seq "prompt" tokens.
    let mut stream = b.new_stream().unwrap();
    let mut events = Vec::new();
    let req = tokens_request(vec![1, 2, 3], 64, Sampling::greedy());
    let outcome = stream
        .generate(&req, &mut |ev| {
            events.push(ev);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tokens, 1);
    assert_eq!((outcome.prompt_tokens, outcome.output_tokens), (32, 1));
    assert_eq!(outcome.stop_reason, StopReason::MaxTokens);

    let r = b.record();
    assert_eq!(r.kind, "onnx");
    assert!(r.device.contains("onnxruntime 1.31.1"), "{}", r.device);
    assert!(r.model.contains("input_ids i64[2,16]"), "{}", r.model);
    assert!(r.threads_note.contains("sessions=per-instance"));
    assert!(r.threads_note.contains("intra_op_threads=1"));
    assert!(r.threads_note.contains("graph_optimization=all"));
}

#[test]
fn any_mode_binds_named_dims_and_rejects_what_it_cannot_synthesise() {
    let dir = decoder_model().parent().unwrap().join("odd-inputs");
    let mut o = options(dir.join("image-input.onnx"));
    let e = OnnxBackend::load(&o).err().unwrap().to_string();
    assert!(
        e.contains("`pixel_values`") && e.contains("--onnx-dim height=N"),
        "{e}"
    );
    o.dims = vec![("height".into(), 8), ("width".into(), 4)];
    let b = OnnxBackend::load(&o).unwrap();
    assert_eq!(b.synthesised_inputs().unwrap()[0].shape, vec![1, 3, 8, 4]);
    assert_eq!(b.synthesised_inputs().unwrap()[0].fill, Fill::Uniform);
    let (_, events, _) = generate(&b, &tokens_request(vec![1], 1, Sampling::greedy()));
    assert_eq!(events, 1);

    let e = OnnxBackend::load(&options(dir.join("string-input.onnx")))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("input `text` cannot be synthesised") && e.contains("string"),
        "{e}"
    );
}

/// Tokens the same model and prompt give under onnxruntime's Python API (greedy, with its own
/// cache loop), computed once when the fixture was written: an independent driver.
const PYTHON_GREEDY: [u32; 12] = [84, 172, 31, 134, 458, 393, 440, 473, 209, 358, 370, 331];

#[test]
fn decoder_greedy_is_deterministic_and_matches_the_uncached_recomputation() {
    let b = OnnxBackend::load(&options(decoder_model())).unwrap();
    assert_eq!(b.mode(), OnnxMode::Decoder);
    let layout = b.decoder_layout().unwrap();
    assert_eq!(
        (layout.layers, layout.kv_heads, layout.head_dim),
        (2, 2, 16)
    );
    let req = tokens_request(PROMPT.to_vec(), 12, Sampling::greedy());
    let (first, events, stop) = generate(&b, &req);
    assert_eq!((events, stop), (12, StopReason::MaxTokens));
    let (second, _, _) = generate(&b, &req);
    assert_eq!(first, second, "greedy generation is deterministic");
    assert_eq!(first, PYTHON_GREEDY);
    let uncached = b.greedy_without_cache(&PROMPT, 12).unwrap();
    assert_eq!(first, uncached, "the KV-cache path and recomputation agree");

    let r = b.record();
    assert_eq!((r.vocab_size, r.context_limit_tokens), (512, 256));
    assert_eq!(r.eos_token_ids, vec![0]);
    assert!(r.tokenizer.is_some());
}

#[test]
fn decoder_sampling_text_eos_and_limits() {
    let mut o = options(decoder_model());
    o.sharing = SessionSharing::Shared;
    let b = OnnxBackend::load(&o).unwrap();
    assert!(b.record().threads_note.contains("sessions=shared"));
    // Shared and per-instance sessions compute the same thing.
    let (shared, _, _) = generate(&b, &tokens_request(PROMPT.to_vec(), 12, Sampling::greedy()));
    assert_eq!(shared, PYTHON_GREEDY);

    let hot = Sampling {
        temperature: 1.0,
        top_p: Some(0.9),
        seed: 7,
    };
    let (a, _, _) = generate(&b, &tokens_request(PROMPT.to_vec(), 16, hot));
    let (a2, _, _) = generate(&b, &tokens_request(PROMPT.to_vec(), 16, hot));
    assert_eq!(a, a2, "same seed, same samples");
    assert!(a.iter().all(|&t| t < 512));

    // Text in, text out, through tokenizer.json; EOS (id 0) is never emitted as content.
    assert!(b.accepts_text());
    let mut stream = b.new_stream().unwrap();
    let out = stream
        .generate(
            &GenRequest {
                prompt: Prompt::Text("The quick brown fox".into()),
                max_tokens: 40,
                ignore_eos: false,
                sampling: Sampling::greedy(),
            },
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap();
    assert!(out.prompt_tokens > 0);
    assert!(!out.output_token_ids.contains(&0));
    assert!(matches!(
        out.stop_reason,
        StopReason::Eos | StopReason::MaxTokens
    ));
    assert!(b.decode(&out.output_token_ids).is_some());

    let e = stream
        .generate(
            &tokens_request(vec![5; 250], 10, Sampling::greedy()),
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(e.message.contains("context limit (256)"), "{}", e.message);
    let e = stream
        .generate(
            &tokens_request(vec![600], 1, Sampling::greedy()),
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
    assert!(
        e.message.contains("outside the vocabulary"),
        "{}",
        e.message
    );

    // Cancelling stops at the next token.
    let mut n = 0;
    let out = stream
        .generate(
            &tokens_request(PROMPT.to_vec(), 10, Sampling::greedy()),
            &mut |_| {
                n += 1;
                if n == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
    assert_eq!(
        (out.output_tokens, out.stop_reason),
        (3, StopReason::Cancelled)
    );
}

#[test]
fn forcing_any_mode_on_the_decoder_prefills_with_an_empty_cache() {
    let mut o = options(decoder_model());
    o.mode = Some(OnnxMode::Any);
    o.seq_len = Some(8);
    let b = OnnxBackend::load(&o).unwrap();
    let shapes: Vec<(String, Vec<i64>)> = b
        .synthesised_inputs()
        .unwrap()
        .iter()
        .map(|i| (i.name.clone(), i.shape.clone()))
        .collect();
    assert!(shapes.contains(&("attention_mask".into(), vec![1, 8])));
    assert!(shapes.contains(&("past_key_values.1.value".into(), vec![1, 2, 0, 16])));
    let (_, events, _) = generate(&b, &tokens_request(vec![1], 1, Sampling::greedy()));
    assert_eq!(events, 1);
}
