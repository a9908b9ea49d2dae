#!/usr/bin/env python3
"""How long `GET /v1/files` takes with many files, through the official OpenAI SDK.

Usage: bench_listing.py BEDROCK_BATCH_BINARY EMULATOR_BINARY [FILES] [RUNS] [OTHER_BINARY]

Starts the emulator example (its S3 server holds the staging prefix) and one server, uploads
16 small files through the API, makes FILES files in all (default 10,000) by copying the first
one's folder and record (and index entry) under fresh ids on the S3 server's disk, then lists
them RUNS times (default 7) through the SDK and prints the median, the fastest and the slowest
listing, in seconds. With OTHER_BINARY (another build of bedrock-batch), a second server of that
build runs on the same staging prefix, and the two list in turn, side by side. The README's
figures come from here (release binaries).

Why copies: the test S3 server (s3s-fs) walks its whole tree for every prefix listing, and an
upload lists its folder, so 10,000 uploads through it take an hour; what a listing reads is the
same either way.
"""

import concurrent.futures
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from openai import OpenAI

from test_openai_sdk import ALICE, ENV, Servers, read_line


def copies(template, n):
    """Makes `n` copies of file `template` (its folder, record and index entry) under fresh
    ids, on the disk of the emulator's S3 server (s3s-fs: an object is a file at its key)."""
    found = glob.glob(os.path.join(tempfile.gettempdir(), ".tmp*", "demo", "serve", "files", template))
    assert len(found) == 1, found
    files = os.path.dirname(found[0])
    serve = os.path.dirname(files)
    with open(os.path.join(found[0], "file.json")) as f:
        record = json.load(f)
    index = os.path.join(serve, "index", "files", record["owner"].encode().hex())
    made = set()
    for k in range(n):
        new = f"file-{k:024x}"
        shutil.copytree(found[0], os.path.join(files, new), ignore=shutil.ignore_patterns(".bedrock-batch"))
        record["id"] = new
        with open(os.path.join(files, new, "file.json"), "w") as f:
            json.dump(record, f)
        open(os.path.join(index, new), "w").close()
        made.add(new)
    return made


def main():
    binary, emulator = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 7
    with tempfile.TemporaryDirectory() as workdir:
        s = Servers(binary, emulator, workdir)
        try:
            # Background work polled rarely: the listings are what is measured.
            with open(s.config) as f:
                config = f.read().replace('poll_interval = "100ms"', 'poll_interval = "10m"')
            with open(s.config, "w") as f:
                f.write(config)
            s.stop_server()
            s.start()
            c = OpenAI(base_url=s.url, api_key=ALICE, max_retries=0, timeout=600)
            line = json.dumps({"custom_id": "request-0", "method": "POST", "url": "/v1/chat/completions",
                               "body": {"model": "gpt-4o-mini", "max_tokens": 8,
                                        "messages": [{"role": "user", "content": "Hi"}]}}).encode() + b"\n"

            def upload(k):
                return c.files.create(file=(f"f{k}.jsonl", line), purpose="batch").id

            started = time.time()
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                uploaded = list(pool.map(upload, range(min(n, 16))))
            print(f"uploaded {len(uploaded)} files in {time.time() - started:.1f} s", flush=True)
            ids = set(uploaded) | copies(uploaded[0], n - len(uploaded))
            servers = [("this build", c)]
            other = None
            if len(sys.argv) > 5:
                other = subprocess.Popen(
                    [sys.argv[5], "--endpoint-url", s.s3, "--bedrock-endpoint-url", s.bedrock,
                     "serve", "--config", s.config, "--listen", "127.0.0.1:0"],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV)
                url = read_line(other, "listening on ") + "/v1"
                servers.append(("other build", OpenAI(base_url=url, api_key=ALICE, max_retries=0,
                                                      timeout=600)))
            times = {name: [] for name, _ in servers}
            try:
                for _ in range(runs):
                    for name, client in servers:
                        started = time.perf_counter()
                        listed = client.files.list().data
                        times[name].append(time.perf_counter() - started)
                        assert ids <= {f.id for f in listed}, f"{name}: a file is missing"
            finally:
                if other:
                    other.kill()
                    other.wait()
            for name, t in times.items():
                print(f"GET /v1/files, {n} files, {runs} runs, {name}: median {statistics.median(t):.3f} s "
                      f"(fastest {min(t):.3f}, slowest {max(t):.3f})")
        finally:
            s.close()


if __name__ == "__main__":
    main()
