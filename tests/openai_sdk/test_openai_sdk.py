#!/usr/bin/env python3
"""The official OpenAI Python SDK, unchanged, against `bedrock-batch serve`.

Usage: test_openai_sdk.py BEDROCK_BATCH_BINARY EMULATOR_BINARY

Starts the emulator example (an S3 server and the Bedrock batch emulator on 127.0.0.1) and the
server, then runs what a user of the SDK does: upload, create, poll, download; list with paging;
cancel; a file with bad lines; wrong key, someone else's batch, a model the key may not use; a
server restart in the middle of a batch; three replicas on one prefix, requests spread across
them, one killed mid-batch; a Responses batch, parsed with the SDK's own Response model, with
its estimated cost; the models a key may use; an upload downloaded as sent; a file that expires
and disappears. Prints "N passed, M failed".
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

import openai
from openai import OpenAI

ALICE, BOB = "sk-alice-test", "sk-bob-test"
ENV = dict(
    os.environ,
    AWS_ACCESS_KEY_ID="test",
    AWS_SECRET_ACCESS_KEY="testsecret",
    AWS_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
    AWS_CONFIG_FILE="/nonexistent/config",
    AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials",
)


def read_line(proc, prefix, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process ended before printing {prefix!r}")
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    raise RuntimeError(f"no {prefix!r} in time")


class Servers:
    def __init__(self, binary, emulator, workdir):
        self.binary = binary
        # Slow progress, so a batch is still running when the server restarts or is cancelled.
        env = dict(ENV, EMULATOR_RECORDS_PER_TICK="25", EMULATOR_TICK_MS="100", EMULATOR_ERROR_EVERY="10")
        self.emulator = subprocess.Popen([emulator], stdout=subprocess.PIPE, text=True, env=env)
        self.s3 = read_line(self.emulator, "S3 (bucket s3://demo/): ")
        self.bedrock = read_line(self.emulator, "Bedrock:")
        self.config = os.path.join(workdir, "serve.toml")
        with open(self.config, "w") as f:
            f.write(f"""
staging = "s3://demo/serve/"
role_arn = "arn:aws:iam::123456789012:role/BedrockBatch"
poll_interval = "100ms"
min_expires_after = 1

[prices."anthropic.claude-3-haiku-20240307-v1:0"]
input = 0.25
output = 1.25
batch_discount = 0.5

[models.gpt-4o-mini]
model_id = "anthropic.claude-3-haiku-20240307-v1:0"

[models.other]
model_id = "amazon.nova-lite-v1:0"

[[keys]]
name = "alice"
sha256 = "{hashlib.sha256(ALICE.encode()).hexdigest()}"
models = ["gpt-4o-mini"]

[[keys]]
name = "bob"
sha256 = "{hashlib.sha256(BOB.encode()).hexdigest()}"
models = ["other"]
""")
        self.server = None
        self.start()

    def start(self):
        self.server = subprocess.Popen(
            [self.binary, "--endpoint-url", self.s3, "--bedrock-endpoint-url", self.bedrock,
             "serve", "--config", self.config, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, text=True, env=ENV)
        self.url = read_line(self.server, "listening on ") + "/v1"

    def stop_server(self):
        self.server.terminate()
        self.server.wait(timeout=30)

    def close(self):
        for p in (self.server, self.emulator):
            if p and p.poll() is None:
                p.kill()
                p.wait()

    def client(self, key):
        return OpenAI(base_url=self.url, api_key=key, max_retries=0, timeout=60)


class Replicas:
    """More servers, sharing one staging prefix of their own, as replicas behind a balancer."""

    def __init__(self, s, workdir, n):
        with open(s.config) as f:
            text = f.read().replace('staging = "s3://demo/serve/"', 'staging = "s3://demo/replicas/"')
        config = os.path.join(workdir, "replicas.toml")
        with open(config, "w") as f:
            f.write(text)
        self.procs, self.urls = [], []
        for _ in range(n):
            proc = subprocess.Popen(
                [s.binary, "--endpoint-url", s.s3, "--bedrock-endpoint-url", s.bedrock,
                 "serve", "--config", config, "--listen", "127.0.0.1:0"],
                stdout=subprocess.PIPE, text=True, env=ENV)
            self.procs.append(proc)
            self.urls.append(read_line(proc, "listening on ") + "/v1")

    def client(self, i, key):
        return OpenAI(base_url=self.urls[i], api_key=key, max_retries=0, timeout=60)

    def kill(self, i):
        """SIGKILL: no shutdown, no lease given back."""
        self.procs[i].kill()
        self.procs[i].wait()

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def bedrock_jobs(s, fragment):
    """The emulator's jobs whose input is under a key containing `fragment`."""
    jobs, token = [], None
    while True:
        url = s.bedrock + "/model-invocation-jobs?maxResults=1000" + (f"&nextToken={token}" if token else "")
        # The emulator wants a request signed for bedrock; it does not check the signature.
        auth = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=0"
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": auth})) as r:
            page = json.load(r)
        jobs += [j for j in page["invocationJobSummaries"]
                 if fragment in j["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]]
        token = page.get("nextToken")
        if not token:
            return jobs


def requests_file(workdir, name, n, extra=b""):
    path = os.path.join(workdir, name)
    with open(path, "wb") as f:
        for i in range(n):
            line = {"custom_id": f"request-{i}", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "gpt-4o-mini", "max_tokens": 64,
                             "messages": [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": f"Question {i}: caf\u00e9?"}]}}
            f.write(json.dumps(line).encode() + b"\n")
        f.write(extra)
    return path


def wait(client, batch_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        b = client.batches.retrieve(batch_id)
        if b.status in ("completed", "failed", "expired", "cancelled"):
            return b
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} still {b.status}")


def lines(client, file_id):
    text = client.files.content(file_id).text
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def every_id_once(client, batch, n):
    out = lines(client, batch.output_file_id)
    err = lines(client, batch.error_file_id)
    ids = [l["custom_id"] for l in out + err]
    assert sorted(ids) == sorted(f"request-{i}" for i in range(n)), (len(ids), n)
    return out, err


def test_round_trip(s, workdir):
    c = s.client(ALICE)
    with open(requests_file(workdir, "in.jsonl", 150), "rb") as f:
        file = c.files.create(file=f, purpose="batch")
    assert file.object == "file" and file.purpose == "batch" and file.bytes > 0
    assert c.files.retrieve(file.id).id == file.id
    batch = c.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                             completion_window="24h", metadata={"team": "a"})
    assert batch.status in ("validating", "in_progress", "finalizing"), batch.status
    assert batch.metadata == {"team": "a"}
    done = wait(c, batch.id)
    assert done.status == "completed", done
    assert done.request_counts.total == 150
    assert done.request_counts.completed == 135 and done.request_counts.failed == 15
    out, err = every_id_once(c, done, 150)
    assert out[0]["response"]["status_code"] == 200
    assert out[0]["response"]["body"]["object"] == "chat.completion"
    assert err[0]["response"]["status_code"] == 400


def test_responses_models_and_original(s, workdir):
    c = s.client(ALICE)
    assert [m.id for m in c.models.list().data] == ["gpt-4o-mini"]
    assert c.models.retrieve("gpt-4o-mini").object == "model"
    try:
        c.models.retrieve("other")
        raise AssertionError("another key's model is listed")
    except openai.NotFoundError:
        pass
    path = os.path.join(workdir, "responses.jsonl")
    with open(path, "wb") as f:
        for i in range(120):
            body = {"model": "gpt-4o-mini", "instructions": "Be brief.", "max_output_tokens": 64,
                    "input": [{"role": "user", "content": [{"type": "input_text", "text": f"Question {i}"}]}]}
            f.write(json.dumps({"custom_id": f"request-{i}", "method": "POST", "url": "/v1/responses",
                                "body": body}).encode() + b"\r\n")
    original = open(path, "rb").read()
    with open(path, "rb") as f:
        file = c.files.create(file=f, purpose="batch")
    assert c.files.content(file.id).content == original
    batch = c.batches.create(input_file_id=file.id, endpoint="/v1/responses", completion_window="24h")
    assert batch.endpoint == "/v1/responses"
    done = wait(c, batch.id)
    assert done.status == "completed", done
    assert done.model == "gpt-4o-mini", done.model
    assert done.usage is not None and done.usage.input_tokens > 0, done.usage
    want = (done.usage.input_tokens * 0.25 + done.usage.output_tokens * 1.25) / 1e6 * 0.5
    assert abs(float(done.metadata["estimated_cost_usd"]) - want) < 1e-6, done.metadata
    out, err = every_id_once(c, done, 120)
    assert out and err
    for line in out:
        response = openai.types.responses.Response.model_validate(line["response"]["body"])
        assert response.object == "response" and response.status == "completed", response
        assert isinstance(response.output_text, str) and response.usage.input_tokens > 0
    for file_id, n in ((done.output_file_id, len(c.files.content(done.output_file_id).content)),
                       (done.error_file_id, len(c.files.content(done.error_file_id).content))):
        assert c.files.retrieve(file_id).bytes == n, (file_id, n)
    # An output file can be deleted, as on OpenAI; the batch keeps naming it.
    deleted = c.files.delete(done.output_file_id)
    assert deleted.deleted and deleted.id == done.output_file_id, deleted
    try:
        c.files.retrieve(done.output_file_id)
        raise AssertionError("a deleted output file was found")
    except openai.NotFoundError:
        pass
    assert c.batches.retrieve(done.id).output_file_id == done.output_file_id


def test_expired_file_disappears(s, workdir):
    c = s.client(ALICE)
    with open(requests_file(workdir, "short.jsonl", 100), "rb") as f:
        file = c.files.create(file=f, purpose="batch",
                              expires_after={"anchor": "created_at", "seconds": 1})
    assert file.expires_at == file.created_at + 1, file
    try:
        with open(requests_file(workdir, "long.jsonl", 100), "rb") as f:
            c.files.create(file=f, purpose="batch",
                           expires_after={"anchor": "created_at", "seconds": 2592001})
        raise AssertionError("an expiry beyond 30 days was taken")
    except openai.BadRequestError:
        pass
    deadline = time.time() + 60
    while True:
        try:
            c.files.retrieve(file.id)
        except openai.NotFoundError:
            break
        assert time.time() < deadline, "the file did not expire"
        time.sleep(0.2)
    assert file.id not in [f.id for f in c.files.list().data]


def test_list_paging(s, workdir):
    c = s.client(ALICE)
    made = []
    for k in range(2):
        with open(requests_file(workdir, f"page{k}.jsonl", 100), "rb") as f:
            file = c.files.create(file=f, purpose="batch")
        made.append(c.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                     completion_window="24h").id)
        time.sleep(1.1)
    page = c.batches.list(limit=1)
    assert len(page.data) == 1 and page.has_more
    everything = [b.id for b in c.batches.list(limit=1)]  # the SDK follows `after` itself
    assert len(everything) == len(set(everything))
    for i in made:
        assert i in everything
    assert everything.index(made[1]) < everything.index(made[0]), "newest first"
    # Files page the same way, the SDK following `after`; of one purpose, oldest first if asked.
    files = [f.id for f in c.files.list(limit=1)]
    assert len(files) == len(set(files)) and files == [f.id for f in c.files.list()], files
    uploads = [f.id for f in c.files.list(purpose="batch", order="asc")]
    assert uploads == sorted(uploads, key=files.index, reverse=True), (uploads, files)


def test_cancel(s, workdir):
    c = s.client(ALICE)
    with open(requests_file(workdir, "cancel.jsonl", 400), "rb") as f:
        file = c.files.create(file=f, purpose="batch")
    batch = c.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                             completion_window="24h")
    time.sleep(0.5)
    cancelling = c.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled"), cancelling.status
    done = wait(c, batch.id)
    assert done.status == "cancelled", done.status
    out, err = every_id_once(c, done, 400)
    assert any(l["error"] and l["error"]["code"] == "batch_cancelled" for l in err)


def test_bad_lines(s, workdir):
    c = s.client(ALICE)
    path = requests_file(workdir, "bad.jsonl", 120, extra=b"{not json\n")
    with open(path, "rb") as f:
        file = c.files.create(file=f, purpose="batch")
    batch = c.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                             completion_window="24h")
    assert batch.status == "failed", batch.status
    assert batch.errors.data[0].line == 121, batch.errors
    assert batch.errors.data[0].code == "invalid_json"


def test_access(s, workdir):
    try:
        s.client("sk-wrong").batches.list()
        raise AssertionError("a wrong key was accepted")
    except openai.AuthenticationError:
        pass
    alice, bob = s.client(ALICE), s.client(BOB)
    with open(requests_file(workdir, "bob.jsonl", 100), "rb") as f:
        try:
            bob.files.create(file=f, purpose="batch")
            raise AssertionError("bob used a model he may not use")
        except openai.PermissionDeniedError:
            pass
    with open(requests_file(workdir, "alice.jsonl", 100), "rb") as f:
        file = alice.files.create(file=f, purpose="batch")
    batch = alice.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                 completion_window="24h")
    for call in (lambda: bob.batches.retrieve(batch.id), lambda: bob.files.retrieve(file.id),
                 lambda: bob.batches.cancel(batch.id)):
        try:
            call()
            raise AssertionError("bob saw alice's")
        except openai.NotFoundError:
            pass
    wait(alice, batch.id)


def test_restart(s, workdir):
    c = s.client(ALICE)
    with open(requests_file(workdir, "restart.jsonl", 600), "rb") as f:
        file = c.files.create(file=f, purpose="batch")
    batch = c.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                             completion_window="24h")
    time.sleep(0.3)
    assert c.batches.retrieve(batch.id).status in ("validating", "in_progress")
    s.stop_server()
    s.start()
    c = s.client(ALICE)
    done = wait(c, batch.id)
    assert done.status == "completed", done.status
    every_id_once(c, done, 600)


def test_replicas(s, workdir):
    """Three servers on one prefix, the SDK's requests spread across them, one killed
    (SIGKILL) while the batches run: each batch ends once, through the others, as one Bedrock job,
    with every custom_id once."""
    r = Replicas(s, workdir, 3)
    try:
        clients = [r.client(i, ALICE) for i in range(3)]
        files = []
        for k in range(6):
            with open(requests_file(workdir, f"replica{k}.jsonl", 600), "rb") as f:
                files.append(clients[k % 3].files.create(file=f, purpose="batch").id)
            assert clients[(k + 2) % 3].files.retrieve(files[-1]).id == files[-1]
        made = [clients[(k + 1) % 3].batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h").id
            for k, file_id in enumerate(files)]
        assert any(clients[0].batches.retrieve(b).status in ("validating", "in_progress") for b in made)
        r.kill(0)
        for c in clients[1:]:
            assert sorted(b.id for b in c.batches.list(limit=100)) == sorted(made)
        for k, batch_id in enumerate(made):
            c = clients[1 + k % 2]
            done = wait(c, batch_id)
            assert done.status == "completed", done.status
            assert done.request_counts.total == 600, done.request_counts
            every_id_once(c, done, 600)
        jobs = bedrock_jobs(s, "/replicas/")
        assert len(jobs) == len(made), [j["jobName"] for j in jobs]
    finally:
        r.close()


def main():
    binary, emulator = sys.argv[1], sys.argv[2]
    passed = failed = 0
    with tempfile.TemporaryDirectory() as workdir:
        s = Servers(binary, emulator, workdir)
        try:
            for test in (test_round_trip, test_responses_models_and_original,
                         test_expired_file_disappears, test_list_paging, test_cancel, test_bad_lines,
                         test_access, test_restart, test_replicas):
                try:
                    test(s, workdir)
                    passed += 1
                    print(f"ok {test.__name__}", flush=True)
                except Exception:
                    failed += 1
                    print(f"FAILED {test.__name__}", flush=True)
                    traceback.print_exc()
        finally:
            s.close()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
