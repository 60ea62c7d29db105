//! Client-side cost of a streamed chunk: SSE decoding (`sse-stream`) alone, and with the
//! OpenAI chunk JSON parsed as the remote backend does, over a 256-chunk response body
//! delivered in 16 KiB network reads. Throughput is in chunks.

use bytes::Bytes;
use charter_backends::remote::wire::{self, Format};
use charter_backends::secrets::Secrets;
use criterion::{Criterion, Throughput};
use futures_util::StreamExt;

const CHUNKS: usize = 256;

/// A body as `charter serve` (and most OpenAI-compatible servers) sends it.
fn body() -> Vec<Bytes> {
    let head = r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1795303326,"model":"simulated","choices":"#;
    let mut s = String::new();
    s.push_str(head);
    s.push_str("[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
    for _ in 0..CHUNKS {
        s.push_str(head);
        s.push_str("[{\"index\":0,\"delta\":{\"content\":\" tok\"},\"finish_reason\":null}]}\n\n");
    }
    s.push_str(head);
    s.push_str("[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":256,\"total_tokens\":265}}\n\ndata: [DONE]\n\n");
    s.as_bytes()
        .chunks(16 * 1024)
        .map(Bytes::copy_from_slice)
        .collect()
}

fn decode(rt: &tokio::runtime::Runtime, pieces: &[Bytes], json: bool) -> usize {
    rt.block_on(async {
        let input = futures_util::stream::iter(pieces.iter().cloned().map(Ok::<_, std::io::Error>));
        let mut events = sse_stream::SseByteStream::new(input);
        let mut content = 0;
        while let Some(ev) = events.next().await {
            let ev = ev.unwrap();
            let Some(data) = ev.data.as_deref() else {
                continue;
            };
            if json {
                if wire::parse(Format::OpenAiChat, data, &Secrets::none())
                    .unwrap()
                    .has_content()
                {
                    content += 1;
                }
            } else {
                content += usize::from(data.len() > 100);
            }
        }
        content
    })
}

fn sse(c: &mut Criterion) {
    let pieces = body();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(decode(&rt, &pieces, true), CHUNKS);
    let mut g = c.benchmark_group("sse_parse");
    g.throughput(Throughput::Elements(CHUNKS as u64));
    g.bench_function("sse-stream events, 256 chunks", |b| {
        b.iter(|| decode(&rt, &pieces, false))
    });
    g.bench_function("sse-stream + OpenAI chunk JSON, 256 chunks", |b| {
        b.iter(|| decode(&rt, &pieces, true))
    });
    g.finish();
}

criterion::criterion_group!(benches, sse);
