//! S3 as source and sink, against real S3 servers the tests start themselves (s3s-fs in-process;
//! moto in CI through `BEDROCK_BATCH_TEST_S3_ENDPOINT`).

mod common;
mod s3_server;

use std::sync::atomic::Ordering;

use bedrock_batch::io::{
    ChunkSource, Destination, ObjectWriter, S3Dir, S3Options, S3Source, S3Uri, S3Writer,
};
use bytes::Bytes;
use s3_server::{in_process, server, TestS3};

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8)
        .collect()
}

async fn write_object(
    s3: &TestS3,
    opts: &S3Options,
    uri: &S3Uri,
    bytes: &[u8],
    piece: usize,
) -> std::io::Result<()> {
    let mut w: Box<dyn ObjectWriter> =
        Box::new(S3Writer::new(s3.client().await, uri.clone(), opts));
    for chunk in bytes.chunks(piece.max(1)) {
        w.write(Bytes::copy_from_slice(chunk)).await?;
    }
    w.finish().await
}

async fn read_object(s3: &TestS3, opts: &S3Options, uri: &S3Uri) -> std::io::Result<Vec<u8>> {
    let mut src = S3Source::open(s3.client().await, uri.clone(), opts).await?;
    let mut out = Vec::new();
    while let Some(chunk) = src.next_chunk().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn open_uploads(s3: &TestS3, bucket: &str) -> usize {
    let out = s3
        .client()
        .await
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    out.uploads().len()
}

async fn exists(s3: &TestS3, bucket: &str, key: &str) -> bool {
    s3.client()
        .await
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

fn small_parts(s3: &TestS3) -> S3Options {
    S3Options {
        part_size: 5 << 20,
        upload_concurrency: 3,
        range_size: 3 << 20,
        read_concurrency: 4,
        ..s3.options()
    }
}

#[test]
fn a_large_object_round_trips_through_many_parts_and_ranges() {
    common::rt().block_on(async {
        let s3 = server();
        let bucket = s3.bucket("big").await;
        let opts = small_parts(&s3);
        let uri = S3Uri {
            bucket: bucket.clone(),
            key: "dir/big.jsonl".into(),
        };
        let bytes = data(23 << 20 | 12345, 1); // 5 parts, 8 ranges
        write_object(&s3, &opts, &uri, &bytes, 1 << 20)
            .await
            .unwrap();
        assert_eq!(open_uploads(&s3, &bucket).await, 0);
        let back = read_object(&s3, &opts, &uri).await.unwrap();
        assert!(back == bytes, "byte-identical");
    });
}

#[test]
fn no_size_makes_a_part_too_small() {
    common::rt().block_on(async {
        let s3 = server();
        let bucket = s3.bucket("sizes").await;
        let opts = small_parts(&s3);
        // Around every boundary: nothing, one byte, just under, at and over one and two parts.
        for (i, len) in [
            0,
            1,
            (5 << 20) - 1,
            5 << 20,
            (5 << 20) + 1,
            (10 << 20) - 1,
            10 << 20,
            (10 << 20) + 7,
        ]
        .into_iter()
        .enumerate()
        {
            let uri = S3Uri {
                bucket: bucket.clone(),
                key: format!("o{i}"),
            };
            let bytes = data(len, i as u8);
            // Odd write sizes, so parts are cut from the middle of chunks.
            write_object(&s3, &opts, &uri, &bytes, 777_777)
                .await
                .unwrap_or_else(|e| panic!("{len} bytes: {e}"));
            assert_eq!(read_object(&s3, &opts, &uri).await.unwrap().len(), len);
        }
        assert_eq!(open_uploads(&s3, &bucket).await, 0);
    });
}

#[test]
fn a_sealed_writer_holds_nothing_back_yet_shows_nothing_until_finished() {
    common::rt().block_on(async {
        let s3 = server();
        let bucket = s3.bucket("seal").await;
        let opts = small_parts(&s3);
        // Sizes whose tails stay buffered until sealed: under one part, and one part and a bit.
        for (i, len) in [0usize, 1, 777_777, (5 << 20) + 3].into_iter().enumerate() {
            let uri = S3Uri {
                bucket: bucket.clone(),
                key: format!("s{i}"),
            };
            let bytes = data(len, i as u8);
            let mut w: Box<dyn ObjectWriter> =
                Box::new(S3Writer::new(s3.client().await, uri.clone(), &opts));
            for chunk in bytes.chunks(300_000) {
                w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
            }
            w.seal().await.unwrap();
            assert!(
                !exists(&s3, &bucket, &uri.key).await,
                "{len}: not visible yet"
            );
            assert!(
                w.write(Bytes::from_static(b"late")).await.is_err(),
                "nothing may follow the last part"
            );
            w.finish()
                .await
                .unwrap_or_else(|e| panic!("{len} bytes: {e}"));
            assert!(
                read_object(&s3, &opts, &uri).await.unwrap() == bytes,
                "{len}"
            );
        }
        // Sealed, then abandoned: nothing is left, no upload stays open.
        let uri = S3Uri {
            bucket: bucket.clone(),
            key: "abandoned".into(),
        };
        let mut w: Box<dyn ObjectWriter> =
            Box::new(S3Writer::new(s3.client().await, uri.clone(), &opts));
        w.write(Bytes::from(data(1 << 20, 9))).await.unwrap();
        w.seal().await.unwrap();
        assert_eq!(open_uploads(&s3, &bucket).await, 1, "the data was sent");
        w.abort().await.unwrap();
        assert!(!exists(&s3, &bucket, "abandoned").await);
        assert_eq!(open_uploads(&s3, &bucket).await, 0);
    });
}

#[test]
fn a_prefix_lists_deletes_and_reads_like_a_folder() {
    common::rt().block_on(async {
        let s3 = server();
        let bucket = s3.bucket("prefix").await;
        let opts = s3.options();
        let root = S3Uri {
            bucket: bucket.clone(),
            key: "run/".into(),
        };
        let dir = S3Dir::new(s3.client().await, root, &opts);
        for (rel, body) in [
            ("output/j1/a.jsonl.out", "1\n"),
            ("output/j1/manifest.json.out", "{}"),
            ("output/j2/b.jsonl.out", "2\n"),
            ("input/00000.jsonl", "x\n"),
        ] {
            let mut w = dir.create(rel).await.unwrap();
            w.write(Bytes::from(body)).await.unwrap();
            w.finish().await.unwrap();
        }
        let listed: Vec<(String, u64)> = dir
            .list("output/")
            .await
            .unwrap()
            .into_iter()
            .map(|l| (l.path, l.size))
            .collect();
        assert_eq!(
            listed,
            [
                ("output/j1/a.jsonl.out".to_owned(), 2),
                ("output/j1/manifest.json.out".to_owned(), 2),
                ("output/j2/b.jsonl.out".to_owned(), 2)
            ]
        );
        assert_eq!(dir.children("").await.unwrap(), ["input/", "output/"]);
        assert_eq!(dir.children("output/").await.unwrap(), ["j1/", "j2/"]);
        dir.delete("input/00000.jsonl").await.unwrap();
        dir.delete("input/00000.jsonl").await.unwrap();
        assert!(dir.list("input/").await.unwrap().is_empty());
        assert_eq!(
            dir.read_small("output/j2/b.jsonl.out")
                .await
                .unwrap()
                .unwrap(),
            b"2\n"
        );
        assert_eq!(dir.read_small("nope").await.unwrap(), None);
        let mut src = dir.open("output/j1/a.jsonl.out").await.unwrap();
        assert_eq!(src.next_chunk().await.unwrap().unwrap(), "1\n");
        assert_eq!(dir.uri("x"), format!("s3://{bucket}/run/x"));
    });
}

#[test]
fn a_failure_that_cannot_be_retried_aborts_the_upload_and_leaves_nothing() {
    common::rt().block_on(async {
        let s3 = in_process();
        let bucket = s3.bucket("abort").await;
        let opts = small_parts(&s3);
        s3.faults.upload_part_403_after.store(2, Ordering::SeqCst);
        let uri = S3Uri {
            bucket: bucket.clone(),
            key: "out.jsonl".into(),
        };
        let err = write_object(&s3, &opts, &uri, &data(30 << 20, 2), 1 << 20)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("AccessDenied"), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("s3://{bucket}/out.jsonl")),
            "{err}"
        );
        assert_eq!(
            open_uploads(&s3, &bucket).await,
            0,
            "the upload was aborted"
        );
        assert!(
            !exists(&s3, &bucket, "out.jsonl").await,
            "no object appeared"
        );
    });
}

#[test]
fn a_writer_dropped_unfinished_aborts_its_upload() {
    common::rt().block_on(async {
        let s3 = server();
        let bucket = s3.bucket("drop").await;
        let opts = small_parts(&s3);
        let uri = S3Uri {
            bucket: bucket.clone(),
            key: "half.jsonl".into(),
        };
        let mut w = S3Writer::new(s3.client().await, uri, &opts);
        w.write(Bytes::from(data(12 << 20, 3))).await.unwrap();
        assert_eq!(open_uploads(&s3, &bucket).await, 1);
        drop(w);
        for _ in 0..100 {
            if open_uploads(&s3, &bucket).await == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(open_uploads(&s3, &bucket).await, 0);
        assert!(!exists(&s3, &bucket, "half.jsonl").await);
    });
}

#[test]
fn transient_failures_and_broken_bodies_are_retried_to_identical_bytes() {
    common::rt().block_on(async {
        let s3 = in_process();
        let bucket = s3.bucket("retry").await;
        let opts = small_parts(&s3);
        let uri = S3Uri {
            bucket: bucket.clone(),
            key: "r.jsonl".into(),
        };
        let bytes = data(17 << 20, 4);
        s3.faults.upload_part_503.store(2, Ordering::SeqCst);
        write_object(&s3, &opts, &uri, &bytes, 1 << 20)
            .await
            .unwrap();
        assert_eq!(
            s3.faults.upload_part_503.load(Ordering::SeqCst),
            0,
            "the faults fired"
        );
        s3.faults.get_503.store(2, Ordering::SeqCst);
        s3.faults.get_cut.store(3, Ordering::SeqCst);
        let back = read_object(&s3, &opts, &uri).await.unwrap();
        assert_eq!(
            s3.faults.get_cut.load(Ordering::SeqCst),
            0,
            "the cuts fired"
        );
        assert!(
            back == bytes,
            "byte-identical after retries and resumed bodies"
        );
    });
}

#[test]
fn an_object_replaced_during_a_read_is_an_error_not_mixed_data() {
    common::rt().block_on(async {
        let s3 = server();
        let bucket = s3.bucket("replace").await;
        let opts = S3Options {
            range_size: 1 << 20,
            read_concurrency: 1,
            ..s3.options()
        };
        let uri = S3Uri {
            bucket: bucket.clone(),
            key: "moving.jsonl".into(),
        };
        write_object(&s3, &opts, &uri, &data(6 << 20, 5), 1 << 20)
            .await
            .unwrap();
        let mut src = S3Source::open(s3.client().await, uri.clone(), &opts)
            .await
            .unwrap();
        let first = src.next_chunk().await.unwrap().unwrap();
        assert_eq!(first.len(), 1 << 20);
        // Let the read-ahead finish, then replace the object.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        write_object(&s3, &opts, &uri, &data(6 << 20, 6), 1 << 20)
            .await
            .unwrap();
        let mut failed = None;
        for _ in 0..6 {
            match src.next_chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let e = failed.expect("the read fails once the object changed");
        let msg = e.to_string();
        assert!(
            msg.contains("changed") || msg.contains("PreconditionFailed"),
            "{msg}"
        );
    });
}

#[test]
fn errors_name_the_object_and_the_aws_code() {
    common::rt().block_on(async {
        let s3 = server();
        let bucket = s3.bucket("errors").await;
        let opts = s3.options();
        let missing = S3Uri {
            bucket: bucket.clone(),
            key: "absent.jsonl".into(),
        };
        let e = S3Source::open(s3.client().await, missing, &opts)
            .await
            .err()
            .unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
        assert!(
            e.to_string()
                .contains(&format!("s3://{bucket}/absent.jsonl")),
            "{e}"
        );
    });
}

#[test]
fn access_denied_says_what_to_check() {
    common::rt().block_on(async {
        let s3 = in_process();
        let bucket = s3.bucket("denied").await;
        let opts = s3.options();
        s3.faults.down.store(true, Ordering::SeqCst);
        let root = S3Uri {
            bucket: bucket.clone(),
            key: "p/".into(),
        };
        let e = S3Dir::new(s3.client().await, root, &opts)
            .read_small("batch.json")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("s3://{bucket}/p/batch.json")),
            "{msg}"
        );
        assert!(
            msg.contains("AccessDenied") && msg.contains("check the credentials"),
            "{msg}"
        );
    });
}

#[test]
fn batch_folders_live_on_s3_end_to_end() {
    use bedrock_batch::batch_folder::FolderReader;
    use bedrock_batch::io::Discard;
    use bedrock_batch::pipeline::{
        convert_from_bedrock, convert_to_bedrock, BedrockOutput, FromBedrockOptions, OutputFile,
    };
    use bedrock_batch::record::Family;
    use std::sync::Arc;

    common::rt().block_on(async {
        let s3 = server();
        let bucket = s3.bucket("e2e").await;
        let opts = s3.options();
        let input = S3Uri { bucket: bucket.clone(), key: "in/requests.jsonl".into() };
        write_object(&s3, &opts, &input, &common::sample(300), 1 << 16).await.unwrap();

        // OpenAI input on S3 → a two-job batch folder on S3.
        let root = S3Uri { bucket: bucket.clone(), key: "run/".into() };
        let dir = Arc::new(S3Dir::new(s3.client().await, root.clone(), &opts));
        let mut o = common::opts();
        o.records_per_file = 100;
        o.records_per_job = 150;
        let source = S3Source::open(s3.client().await, input, &opts).await.unwrap();
        let out = BedrockOutput::new_folder(dir.clone(), &o).await.unwrap();
        let report = convert_to_bedrock(source, out, &o).await.unwrap();
        assert_eq!((report.records, report.jobs, report.shards), (300, 2, 4));
        let folder = FolderReader::open_existing(dir.clone()).await.unwrap();
        let manifest = folder.manifest().clone();
        let generation = folder.generation();
        assert_eq!(manifest.jobs[1].input_prefix, format!("{generation}/input/job001/"));
        assert_eq!(open_uploads(&s3, &bucket).await, 0);
        assert!(dir.read_small(".bedrock-batch/lock").await.unwrap().is_none(), "the lock is released");

        // Bedrock answers every record but the first of each shard.
        for shard in &manifest.shards {
            let records = common::json_lines(&dir.read_small(&shard.path).await.unwrap().unwrap());
            let mut out = String::new();
            for r in records.iter().skip(1) {
                let line = serde_json::json!({"recordId": r["recordId"], "modelInput": r["modelInput"],
                    "modelOutput": {"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}});
                out.push_str(&line.to_string());
                out.push('\n');
            }
            let name = shard.path.rsplit('/').next().unwrap();
            let mut w = dir.create(&format!("{generation}/output/abc123/{name}.out")).await.unwrap();
            w.write(Bytes::from(out)).await.unwrap();
            w.finish().await.unwrap();
        }

        // And back: results written to S3.
        let outputs = folder.outputs(&[]).await.unwrap();
        assert_eq!(outputs.records.len(), 4);
        let mut files = Vec::new();
        for rel in &outputs.records {
            files.push(OutputFile { name: rel.clone(), source: folder.open_object(rel).await.unwrap() });
        }
        let ledger = folder.ledger().await.unwrap();
        let fo = FromBedrockOptions::new(Family::Anthropic, "gpt-4o-mini", 1);
        let results = root.join("results/output.jsonl");
        let ok = Box::new(S3Writer::new(s3.client().await, results.clone(), &opts));
        let report = convert_from_bedrock(files, Some(Arc::new(ledger)), ok, Box::new(Discard::default()), &fo)
            .await
            .unwrap();
        assert_eq!((report.succeeded, report.missing), (296, 4));
        let back = read_object(&s3, &opts, &results).await.unwrap();
        assert_eq!(common::json_lines(&back).len(), 296);
    });
}

#[test]
fn the_cli_reads_and_writes_s3() {
    let s3 = server();
    let rt = common::rt();
    let bucket = rt.block_on(s3.bucket("cli"));
    let opts = s3.options();
    let input = S3Uri {
        bucket: bucket.clone(),
        key: "requests.jsonl".into(),
    };
    rt.block_on(write_object(
        &s3,
        &opts,
        &input,
        &common::sample(120),
        1 << 20,
    ))
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_bedrock-batch");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(["--endpoint-url", &s3.endpoint])
            .args(args)
            .output()
            .unwrap()
    };
    let dest = format!("s3://{bucket}/batches/run1/");
    let o = run(&["to-bedrock", &input.to_string(), &dest, "-m", common::MODEL]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dir = S3Dir::new(
        rt.block_on(s3.client()),
        S3Uri {
            bucket: bucket.clone(),
            key: "batches/run1/".into(),
        },
        &opts,
    );
    let generation = {
        let raw = rt.block_on(dir.read_small("batch.json")).unwrap().unwrap();
        serde_json::from_slice::<serde_json::Value>(&raw).unwrap()["generation"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let names: Vec<String> = rt
        .block_on(dir.list(""))
        .unwrap()
        .into_iter()
        .map(|l| l.path.replace(&generation, "GEN"))
        .collect();
    assert_eq!(
        names,
        [
            "batch.json",
            "GEN/ids/00000.ids",
            "GEN/input/job000/00000.jsonl",
            "GEN/rejected.jsonl",
        ]
    );

    // No Bedrock output yet: every record comes back as batch_expired, in results/ on S3.
    let o = run(&["from-bedrock", &dest]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let errors = rt
        .block_on(dir.read_small("results/errors.jsonl"))
        .unwrap()
        .unwrap();
    assert_eq!(common::json_lines(&errors).len(), 120);

    // A stream output to an S3 object, rejects beside it.
    let out = format!("s3://{bucket}/records.jsonl");
    let o = run(&["to-bedrock", &input.to_string(), &out, "-m", common::MODEL]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let root = S3Dir::new(
        rt.block_on(s3.client()),
        S3Uri {
            bucket: bucket.clone(),
            key: String::new(),
        },
        &opts,
    );
    assert_eq!(
        common::json_lines(
            &rt.block_on(root.read_small("records.jsonl"))
                .unwrap()
                .unwrap()
        )
        .len(),
        120
    );
    assert!(rt
        .block_on(root.read_small("records.jsonl.rejected.jsonl"))
        .unwrap()
        .is_some());

    // A missing object is a clear error naming it.
    let o = run(&[
        "to-bedrock",
        &format!("s3://{bucket}/absent.jsonl"),
        "-",
        "-m",
        common::MODEL,
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("s3://{bucket}/absent.jsonl")),
        "{err}"
    );
}

#[test]
fn the_server_really_refuses_small_parts() {
    // The size tests above mean something only if the server enforces S3's 5 MiB minimum.
    common::rt().block_on(async {
        let s3 = server();
        let bucket = s3.bucket("small").await;
        let client = s3.client().await;
        let up = client
            .create_multipart_upload()
            .bucket(&bucket)
            .key("k")
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap();
        let mut parts = Vec::new();
        for n in 1..=2 {
            let body = aws_sdk_s3::primitives::ByteStream::from(vec![b'x'; 1024]);
            let out = client
                .upload_part()
                .bucket(&bucket)
                .key("k")
                .upload_id(id)
                .part_number(n)
                .body(body)
                .send()
                .await
                .unwrap();
            parts.push(
                aws_sdk_s3::types::CompletedPart::builder()
                    .part_number(n)
                    .e_tag(out.e_tag().unwrap())
                    .build(),
            );
        }
        let done = client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key("k")
            .upload_id(id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        let err = done.expect_err("a 1 KiB first part must be refused");
        use aws_sdk_s3::error::ProvideErrorMetadata;
        assert_eq!(err.code(), Some("EntityTooSmall"));
    });
}

#[test]
fn kms_key_and_bucket_owner_go_with_every_write() {
    common::rt().block_on(async {
        let s3 = in_process();
        let bucket = s3.bucket("kms").await;
        let opts = S3Options {
            kms_key_id: Some("arn:aws:kms:us-east-1:111122223333:key/abc".into()),
            expected_bucket_owner: Some("111122223333".into()),
            ..small_parts(&s3)
        };
        s3.faults.seen.lock().unwrap().clear();
        let big = S3Uri {
            bucket: bucket.clone(),
            key: "big".into(),
        };
        write_object(&s3, &opts, &big, &data(11 << 20, 7), 1 << 20)
            .await
            .unwrap();
        let small = S3Uri {
            bucket: bucket.clone(),
            key: "small".into(),
        };
        write_object(&s3, &opts, &small, b"tiny", 4).await.unwrap();
        let seen = s3.faults.seen.lock().unwrap().clone();
        let creates: Vec<_> = seen
            .iter()
            .filter(|(m, _, _)| m.starts_with("POST uploads"))
            .collect();
        let puts: Vec<_> = seen
            .iter()
            .filter(|(m, _, _)| m == "PUT x-id=PutObject")
            .collect();
        assert_eq!((creates.len(), puts.len()), (1, 1), "{seen:?}");
        for (_, kms, _) in creates.iter().chain(&puts) {
            assert_eq!(
                kms.as_deref(),
                Some("arn:aws:kms:us-east-1:111122223333:key/abc")
            );
        }
        assert!(
            seen.iter()
                .all(|(_, _, owner)| owner.as_deref() == Some("111122223333")),
            "{seen:?}"
        );
    });
}

#[test]
fn the_endpoint_can_come_from_the_environment() {
    let s3 = server();
    let rt = common::rt();
    let bucket = rt.block_on(s3.bucket("env"));
    let opts = s3.options();
    let input = S3Uri {
        bucket: bucket.clone(),
        key: "in.jsonl".into(),
    };
    rt.block_on(write_object(
        &s3,
        &opts,
        &input,
        &common::sample(3),
        1 << 20,
    ))
    .unwrap();
    for var in ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_bedrock-batch"))
            .env(var, &s3.endpoint)
            .args([
                "-q",
                "to-bedrock",
                &input.to_string(),
                "-",
                "-m",
                common::MODEL,
            ])
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{var}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(common::json_lines(&o.stdout).len(), 3, "{var}");
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_aborts_the_uploads_in_flight() {
    let s3 = in_process();
    let rt = common::rt();
    let bucket = rt.block_on(s3.bucket("sigint"));
    s3.faults.part_delay_ms.store(300, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, common::sample(40_000)).unwrap();
    let out = format!("s3://{bucket}/out.jsonl");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bedrock-batch"))
        .args([
            "--endpoint-url",
            &s3.endpoint,
            "--s3-part-size",
            "5MiB",
            "-q",
            "to-bedrock",
        ])
        .arg(&input)
        .args([&out, "-m", common::MODEL])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until an upload is open and parts are on their way, then press Ctrl-C.
    for _ in 0..500 {
        if s3.faults.upload_parts.load(Ordering::SeqCst) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        !s3.faults.uploads.lock().unwrap().is_empty(),
        "an upload is in progress"
    );
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        s3.faults.uploads.lock().unwrap().is_empty(),
        "every upload was aborted"
    );
    assert!(!rt.block_on(exists(&s3, &bucket, "out.jsonl")));
}

/// Records of several servers on one prefix: conditional writes as a compare-and-swap.
#[test]
fn conditional_writes_make_a_compare_and_swap() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s3 = server();
        let bucket = s3.bucket("cas").await;
        let opts = s3.options();
        let uri = S3Uri {
            bucket,
            key: "staging/".into(),
        };
        let dir = S3Dir::new(opts.client().await, uri, &opts);
        common::check_compare_and_swap(std::sync::Arc::new(dir)).await;
    });
}
