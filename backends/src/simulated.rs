//! A SIMULATED backend — a labelled test tool, never a stand-in for a real model.
//!
//! It "generates" `max_tokens` tokens with fixed, configured timings (time to first token, then
//! one token per inter-token interval) by sleeping, so whole-pipeline tests (sweeps, SLO search,
//! coordinated omission) and the runner's own overhead can be measured against known truth.
//! Runs record it as backend kind `simulated` with the timings in the model name.
//!
//! With a `cpu_fraction` above 0, each wait (time to first token, each inter-token interval)
//! starts with a busy loop that burns that share of the interval in *thread CPU time*, then
//! sleeps the rest: a known CPU load per instance, for testing CPU attribution.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::{
    Backend, BackendRecord, GenOutcome, GenRequest, LoadError, Prompt, RequestError, StopReason,
    Stream, TokenEvent, TokenSink, WeightsProvenance,
};

/// Configured service times.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SimulatedTimings {
    pub ttft: Duration,
    pub itl: Duration,
    /// Share of every wait spent busy-looping on the CPU, in [0, 1].
    pub cpu_fraction: f64,
}

/// The simulated backend.
pub struct SimulatedBackend {
    timings: SimulatedTimings,
    vocab: Vec<u32>,
    record: BackendRecord,
}

impl SimulatedBackend {
    pub fn new(timings: SimulatedTimings) -> Self {
        let record = BackendRecord {
            kind: "simulated".into(),
            model: if timings.cpu_fraction > 0.0 {
                format!(
                    "SIMULATED (test tool): ttft {:?}, itl {:?}, busy {:.0} % of each wait",
                    timings.ttft,
                    timings.itl,
                    timings.cpu_fraction * 100.0
                )
            } else {
                format!(
                    "SIMULATED (test tool): ttft {:?}, itl {:?}",
                    timings.ttft, timings.itl
                )
            },
            architecture: "none".into(),
            weights: WeightsProvenance::RandomPreset {
                preset: "simulated".into(),
                seed: 0,
            },
            dtype: "none".into(),
            device: "none".into(),
            threads_per_instance: 1,
            threads_note: if timings.cpu_fraction > 0.0 {
                "busy-loops the configured share of each wait on the calling thread, sleeps the rest".into()
            } else {
                "sleeps; uses no compute".into()
            },
            parameters: None,
            vocab_size: 1000,
            context_limit_tokens: u32::MAX,
            eos_token_ids: Vec::new(),
            tokenizer: None,
            chat_template: None,
            load_time_s: 0.0,
            remote: None,
            kv_cache: None,
            weights_conversion: None,
            pinning: None,
            prefill_matmul: None,
            hybrid: None,
        };
        Self {
            timings,
            vocab: (0..1000).collect(),
            record,
        }
    }
}

impl Backend for SimulatedBackend {
    fn record(&self) -> &BackendRecord {
        &self.record
    }

    fn prompt_token_ids(&self) -> &[u32] {
        &self.vocab
    }

    fn accepts_text(&self) -> bool {
        true
    }

    fn decode(&self, _ids: &[u32]) -> Option<String> {
        None
    }

    fn new_stream(&self) -> Result<Box<dyn Stream>, LoadError> {
        Ok(Box::new(SimulatedStream {
            timings: self.timings,
        }))
    }
}

struct SimulatedStream {
    timings: SimulatedTimings,
}

/// Burn `cpu` of this thread's CPU time in a busy loop.
fn burn(cpu: Duration) {
    if cpu.is_zero() {
        return;
    }
    let Ok(t0) = cpu_time::ThreadTime::try_now() else {
        return;
    };
    while t0.try_elapsed().map(|e| e < cpu).unwrap_or(false) {
        for _ in 0..1000 {
            std::hint::spin_loop();
        }
    }
}

/// Sleep until `deadline` (no-op when it has passed).
fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}

impl Stream for SimulatedStream {
    fn generate(
        &mut self,
        request: &GenRequest,
        on_token: &mut TokenSink<'_>,
    ) -> Result<GenOutcome, RequestError> {
        let prompt_tokens = match &request.prompt {
            Prompt::Tokens(t) => t.len(),
            Prompt::Text(s) => s.split_whitespace().count(),
            Prompt::Chat(m) => m.iter().map(|m| m.content.split_whitespace().count()).sum(),
        } as u64;
        let start = Instant::now();
        let mut out = Vec::with_capacity(request.max_tokens as usize);
        let mut stop_reason = StopReason::MaxTokens;
        for i in 0..request.max_tokens {
            let wait = if i == 0 {
                self.timings.ttft
            } else {
                self.timings.itl
            };
            burn(wait.mul_f64(self.timings.cpu_fraction.clamp(0.0, 1.0)));
            // Deadlines from the start, so sleep overshoot does not accumulate.
            sleep_until(start + self.timings.ttft + self.timings.itl * i);
            out.push(i % 1000);
            if let ControlFlow::Break(()) = on_token(TokenEvent {
                at: Instant::now(),
                tokens: 1,
                id: None,
            }) {
                stop_reason = StopReason::Cancelled;
                break;
            }
        }
        Ok(GenOutcome {
            prompt_tokens,
            output_tokens: out.len() as u64,
            stop_reason,
            output_token_ids: out,
            ..Default::default()
        })
    }
}
