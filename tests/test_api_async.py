"""/v1/async/<kind> through the real stack: each served kind on its real model, the job's
lifecycle, the 4xx that create nothing, the result TTL, and the prediction underneath."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from datetime import datetime
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer
from PIL import Image

from inferhook.kafka import ensure_topics
from inferhook.settings import Settings
from schemas.events import RUNNING_SEQUENCE, Started, utcnow
from schemas.priority import Priority
from schemas.tasks import TaskKind
from schemas.topics import Topics
from tests.support import (
    EventWriter,
    Receiver,
    Stack,
    end_offsets,
    example_input,
    model_folder,
    query,
    wait_until,
)

L6 = "inferhook/all-minilm-l6-v2"
JOB_NOT_FOUND = "Job not found or expired"


async def submit(stack: Stack, kind: str, body: dict[str, Any], *, key: str | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with stack.http.post(f"{stack.base_url}/v1/async/{kind}", json=body,
                               headers={**stack.auth(key), **(headers or {})}) as response:
        return response.status, await response.json(content_type=None)


async def poll(stack: Stack, kind: str, job_id: str, *,
               key: str | None = None) -> tuple[int, dict[str, Any]]:
    async with stack.http.get(f"{stack.base_url}/v1/async/{kind}/{job_id}",
                              headers=stack.auth(key)) as response:
        return response.status, await response.json(content_type=None)


async def finished(stack: Stack, kind: str, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll the job until it answers 200 (completed or failed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = await poll(stack, kind, job_id)
        if status == 200:
            return job
        assert status == 202, job
        assert job["status"] in ("pending", "processing")
        await asyncio.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not finish in {timeout}s")


async def run(stack: Stack, kind: str, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Submit and wait for the job; assert it completed."""
    status, job = await submit(stack, kind, body, **kwargs)
    assert status == 202, job
    done = await finished(stack, kind, job["id"])
    assert (done["status"], done["status_code"]) == ("completed", 200), done
    return done


async def prediction_count(stack: Stack) -> int:
    rows = await query(stack.settings, "SELECT count(*) AS n FROM predictions")
    return int(rows[0]["n"])


def seconds(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- each kind on its model --------------------------------------------------------------------

async def test_embeddings_of_similar_sentences_are_closer_than_unrelated(stack: Stack) -> None:
    texts = ["A man is playing a guitar on stage.", "Someone performs music with a guitar.",
             "The central bank raised interest rates again."]
    status, job = await submit(stack, "embeddings", {"model": L6, "input": texts})
    assert status == 202
    assert set(job) == {"id", "status", "created_at"} and job["status"] == "pending"
    done = await finished(stack, "embeddings", job["id"])
    assert set(done) == {"id", "status", "created_at", "completed_at", "expires_at",
                         "status_code", "result"}
    result = done["result"]
    assert (result["object"], result["model"]) == ("list", L6)
    assert [d["index"] for d in result["data"]] == [0, 1, 2]
    a, b, c = (np.asarray(d["embedding"]) for d in result["data"])
    assert a @ b > max(a @ c, b @ c) + 0.3
    assert result["usage"]["prompt_tokens"] == result["usage"]["total_tokens"] > 6

    packed = await run(stack, "embeddings", {"model": L6, "input": texts[0],
                                             "encoding_format": "base64"})
    vector = np.frombuffer(base64.b64decode(packed["result"]["data"][0]["embedding"]), "<f4")
    assert np.allclose(vector, a, atol=1e-6)


async def test_embeddings_of_a_one_text_model(stack: Stack) -> None:
    done = await run(stack, "embeddings", {"model": "inferhook/minilm", "input": "a guitar"})
    (item,) = done["result"]["data"]
    assert len(item["embedding"]) == 384
    assert "usage" not in done["result"]


async def test_rerank_puts_the_relevant_document_first(stack: Stack) -> None:
    documents = ["Stock prices fell sharply on Monday after the announcement.",
                 "Mix flour, water, yeast and salt, let the dough rise, then bake it in a hot oven.",
                 {"text": "The cat sleeps on the sofa all afternoon."}]
    done = await run(stack, "rerank", {"model": L6, "query": "How do I bake bread at home?",
                                       "documents": documents, "top_n": 2})
    results = done["result"]["results"]
    assert [r["index"] for r in results][:1] == [1] and len(results) == 2
    assert results[0]["document"] == {"text": documents[1]}
    assert results[0]["relevance_score"] > results[1]["relevance_score"]


async def test_ocr_answers_the_page_as_markdown(stack: Stack) -> None:
    image = example_input(stack.settings, "inferhook/ocr")["image"]
    expected = json.loads((model_folder(stack.settings, "inferhook/ocr")
                           / "example_expected.json").read_text())["lines"]
    done = await run(stack, "ocr", {"model": "inferhook/ocr",
                                    "document": {"type": "image_url", "image_url": image}})
    assert done["result"]["pages"] == [{"index": 0, "markdown": "\n\n".join(expected)}]


async def upload(stack: Stack, content: bytes, filename: str, content_type: str) -> str:
    form = aiohttp.FormData()
    form.add_field("purpose", "user_data")
    form.add_field("file", content, filename=filename, content_type=content_type)
    async with stack.http.post(f"{stack.base_url}/v1/files", data=form,
                               headers=stack.auth()) as response:
        assert response.status == 201, await response.text()
        file_id: str = (await response.json())["id"]
        return file_id


async def test_ocr_of_an_uploaded_file(stack: Stack) -> None:
    image = example_input(stack.settings, "inferhook/ocr")["image"]
    expected = json.loads((model_folder(stack.settings, "inferhook/ocr")
                           / "example_expected.json").read_text())["lines"]
    file_id = await upload(stack, base64.b64decode(image.split(",", 1)[1]), "page.png", "image/png")
    done = await run(stack, "ocr", {"model": "inferhook/ocr",
                                    "document": {"type": "file", "file_id": file_id}})
    assert done["result"]["pages"][0]["markdown"] == "\n\n".join(expected)
    bob = await stack.new_key("bob")
    status, problem = await submit(stack, "ocr", {"model": "inferhook/ocr", "document": {
        "type": "file", "file_id": file_id}}, key=bob)  # not bob's file
    assert status == 422 and problem["errors"][0]["loc"] == ["body", "document", "file_id"]
    assert len(await query(stack.settings, "SELECT id FROM predictions")) == 1


async def fetch(stack: Stack, url: str) -> bytes:
    """A signed link's content, without an API key."""
    async with stack.http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.read()


async def test_image_generations_return_pngs(stack: Stack) -> None:
    body = {"model": "inferhook/dcgan-faces", "prompt": "a face", "n": 2, "seed": 11}
    done = await run(stack, "images/generations", body)
    result = done["result"]
    assert result["seed"] == 11 and len(result["data"]) == 2
    pngs = [await fetch(stack, item["url"]) for item in result["data"]]
    for content in pngs:
        image = Image.open(io.BytesIO(content))
        assert (image.format, image.size) == ("PNG", (64, 64))
    inline = await run(stack, "images/generations", {**body, "response_format": "b64_json"})
    assert [base64.b64decode(d["b64_json"]) for d in inline["result"]["data"]] == pngs  # same seed
    # The prediction underneath carries the result too, binary results as file links.
    async with stack.http.get(f"{stack.base_url}/v1/predictions/{inline['id']}",
                              headers=stack.auth()) as response:
        prediction = await response.json()
    linked = [await fetch(stack, item["url"]) for item in prediction["result"]["data"]]
    assert linked == pngs and prediction["result"]["seed"] == 11


@pytest.mark.parametrize("kind", ["images/edits", "images/variations"])
async def test_image_kinds_no_model_serves_answer_404(stack: Stack, kind: str) -> None:
    form = aiohttp.FormData()
    form.add_field("model", "inferhook/dcgan-faces")
    form.add_field("prompt", "add a hat")
    form.add_field("image", b"\x89PNG", filename="a.png", content_type="image/png")
    async with stack.http.post(f"{stack.base_url}/v1/async/{kind}", data=form,
                               headers=stack.auth()) as response:
        assert response.status == 404
        assert (await response.json())["detail"] == f"no model serves {kind}"
    assert await prediction_count(stack) == 0


# --- bad requests ------------------------------------------------------------------------------

OCR_DOCUMENT = {"type": "image_url", "image_url": "data:image/png;base64,"
                + base64.b64encode(b"\x89PNG\r\n\x1a\n but not really").decode()}


@pytest.mark.parametrize(("kind", "body", "status", "where"), [
    ("embeddings", {"model": L6}, 422, ["body", "input"]),
    ("embeddings", {"model": L6, "input": "x", "encoding_format": "int8"}, 422,
     ["body", "encoding_format"]),
    ("embeddings", {"model": L6, "input": ["x"] * 300}, 422, ["body", "input"]),  # model's maxItems
    ("embeddings", {"model": "inferhook/minilm", "input": ["a", "b"]}, 422, ["body", "input"]),
    ("embeddings", {"model": "inferhook/ocr", "input": "x"}, 400, ["body", "model"]),
    ("embeddings", {"model": "inferhook/digits", "input": "x"}, 400, ["body", "model"]),
    ("embeddings", {"model": "nobody/nothing", "input": "x"}, 404, None),
    ("embeddings", {"model": L6, "input": "x", "webhook": "http://10.1.2.3/hook"}, 422,
     ["body", "webhook"]),
    ("rerank", {"model": L6, "query": "q", "documents": []}, 422, ["body", "documents"]),
    ("rerank", {"model": "inferhook/minilm", "query": "q", "documents": ["d"]}, 400,
     ["body", "model"]),
    ("ocr", {"model": "inferhook/ocr", "document": OCR_DOCUMENT}, 422,
     ["body", "document", "image_url"]),
    ("ocr", {"model": "inferhook/ocr", "document": {"type": "image_url",
                                                    "image_url": "https://example.com/a.png"}},
     422, ["body", "document", "image_url"]),
    ("images/generations", {"model": "inferhook/dcgan-faces", "size": "1024x1024"}, 422,
     ["body", "size"]),
    ("images/generations", {"model": "inferhook/dcgan-faces", "n": 11}, 422, ["body", "n"]),
    ("rerank", {"model": L6, "query": "q", "documents": ["d"], "priority": "urgent"}, 422,
     ["body", "priority"]),
])
async def test_bad_requests_get_their_4xx_and_create_nothing(
        stack: Stack, kind: str, body: dict[str, Any], status: int,
        where: list[str] | None) -> None:
    got, problem = await submit(stack, kind, body)
    assert got == status, problem
    assert problem["status"] == status and problem["detail"]
    if where is not None:
        assert any(item["loc"][:len(where)] == where for item in problem["errors"]), problem
    assert await prediction_count(stack) == 0


async def test_a_model_that_does_not_serve_the_kind_names_those_it_serves(stack: Stack) -> None:
    status, problem = await submit(stack, "rerank", {"model": "inferhook/ocr", "query": "q",
                                                     "documents": ["d"]})
    assert status == 400
    assert problem["detail"] == "inferhook/ocr does not serve rerank; it serves ocr"
    status, problem = await submit(stack, "images/variations", {"model": L6})
    assert (status, problem["detail"]) == (404, "no model serves images/variations")


async def test_wrong_media_type_and_oversized_body(stack: Stack) -> None:
    async with stack.http.post(f"{stack.base_url}/v1/async/embeddings", data=b"model=x",
                               headers={**stack.auth(),
                                        "Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 415
    big = {"model": L6, "input": "x" * (stack.settings.max_body_bytes + 1)}
    status, _ = await submit(stack, "embeddings", big)
    assert status == 413
    assert await prediction_count(stack) == 0


async def test_a_run_that_fails_is_a_failed_job(stack: Stack) -> None:
    status, job = await submit(stack, "embeddings", {"model": L6, "input": ["fine", "   "]})
    assert status == 202
    done = await finished(stack, "embeddings", job["id"])
    assert (done["status"], done["status_code"]) == ("failed", 400)
    assert done["error"]["error"]["type"] == "invalid_request_error"
    assert done["error"]["error"]["message"]
    assert "result" not in done and done["expires_at"]


# --- the job and the prediction underneath ----------------------------------------------------

async def test_a_pending_then_processing_job_answers_202(idle_stack: Stack) -> None:
    status, job = await submit(idle_stack, "rerank", {"model": L6, "query": "q",
                                                      "documents": ["d"]})
    assert status == 202
    assert await poll(idle_stack, "rerank", job["id"]) == (202, job)
    async with EventWriter(idle_stack.settings) as events:
        await events.send(job["id"], RUNNING_SEQUENCE, Started(started_at=utcnow()))

    async def processing() -> bool:
        return bool((await poll(idle_stack, "rerank", job["id"]))[1]["status"] == "processing")

    await wait_until(processing, what="processing")
    status, shown = await poll(idle_stack, "rerank", job["id"])
    assert status == 202 and set(shown) == {"id", "status", "created_at"}


async def test_others_and_other_kinds_get_404_and_the_prediction_is_the_same(
        stack: Stack) -> None:
    done = await run(stack, "embeddings", {"model": L6, "input": "hello"})
    job_id = done["id"]
    bob = await stack.new_key("bob")
    for kind, key in (("embeddings", bob), ("rerank", None), ("ocr", None)):
        status, problem = await poll(stack, kind, job_id, key=key)
        assert (status, problem["detail"]) == (404, JOB_NOT_FOUND)
    status, problem = await poll(stack, "embeddings", "no-such-id")
    assert (status, problem["detail"]) == (404, JOB_NOT_FOUND)

    response = await stack.get(job_id)
    prediction = await response.json()
    assert response.status == 200
    assert (prediction["id"], prediction["model"], prediction["kind"]) == (job_id, L6, "embeddings")
    assert prediction["status"] == "succeeded"
    assert prediction["input"] == {"texts": ["hello"]}
    assert prediction["output"]["embeddings"][0] == done["result"]["data"][0]["embedding"]
    plain = await stack.create({"model": L6, "input": {"texts": ["hello"]}})
    status, _ = await poll(stack, "embeddings", (await plain.json())["id"])
    assert status == 404  # a plain prediction is no job


async def test_result_ttl_header_and_its_alias(stack: Stack) -> None:
    body = {"model": L6, "input": "ttl"}
    for headers, ttl in (({"Result-TTL": "120"}, 120), ({"x-bf-async-job-result-ttl": "300"}, 300),
                         ({"Result-TTL": "60", "x-bf-async-job-result-ttl": "300"}, 60),
                         ({"x-bf-async-job-result-ttl": "soon"}, 3600),
                         ({"x-bf-async-job-result-ttl": "-5"}, 3600),
                         ({"x-bf-async-job-result-ttl": "0"}, 3600)):
        done = await run(stack, "embeddings", body, headers=headers)
        lived = seconds(done["expires_at"]) - seconds(done["completed_at"])
        assert lived.total_seconds() == ttl, headers


async def test_an_expired_job_answers_404(stack: Stack) -> None:
    status, job = await submit(stack, "embeddings", {"model": L6, "input": "short-lived"},
                               headers={"x-bf-async-job-result-ttl": "0.2"})
    assert status == 202

    async def gone() -> bool:
        return (await poll(stack, "embeddings", job["id"]))[0] == 404

    await wait_until(gone, what="expiry")
    status, problem = await poll(stack, "embeddings", job["id"])
    assert (status, problem["detail"]) == (404, JOB_NOT_FOUND)
    prediction = await stack.wait_terminal(job["id"])  # it ran, and its result's time is over
    assert prediction["status"] == "succeeded"
    assert seconds(prediction["expires_at"]) <= utcnow()


async def test_prefer_wait_webhook_events_and_idempotency(stack: Stack, receiver: Receiver) -> None:
    body = {"model": L6, "input": "pushed", "webhook": receiver.url,
            "webhook_events_filter": ["completed"]}
    headers = {"Prefer": "wait=30", "Idempotency-Key": "async-1"}
    async with stack.http.post(f"{stack.base_url}/v1/async/embeddings", json=body,
                               headers={**stack.auth(), **headers}) as response:
        job = await response.json()
        assert response.status == 200, job
        assert response.headers["Preference-Applied"] == "wait=30"
        assert response.headers["Location"].endswith(f"/v1/async/embeddings/{job['id']}")
    assert job["status"] == "completed" and job["result"]["data"][0]["embedding"]

    async with stack.http.post(f"{stack.base_url}/v1/async/embeddings", json=body,
                               headers={**stack.auth(), "Idempotency-Key": "async-1"}) as again:
        assert again.headers["Idempotent-Replayed"] == "true"
        assert (await again.json())["id"] == job["id"]

    (hook,) = await receiver.wait_for(1)
    pushed = hook.json()
    assert (pushed["id"], pushed["status"], pushed["kind"]) == (job["id"], "succeeded", "embeddings")
    assert pushed["result"] == job["result"]  # the OpenAI-shaped result beside the output
    async with stack.http.get(f"{stack.base_url}/v1/predictions/{job['id']}/events",
                              headers=stack.auth()) as response:
        history = (await response.json())["results"]
    assert history[0]["data"]["kind"] == "embeddings"
    assert history[0]["data"]["task_options"] == {"encoding_format": "float"}
    assert history[-1]["type"] == "inferhook.prediction.succeeded"


# --- priority ----------------------------------------------------------------------------------

async def record_keys(settings: Settings, topic: str) -> set[str]:
    """The keys of every record of `topic`, from its start to its current end."""
    ends = await end_offsets(settings, [topic])
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*ends)
        keys: set[str] = set()
        for tp, end in ends.items():
            while await consumer.position(tp) < end:
                for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                    keys.update(r.key.decode() for r in records if r.key is not None)
        return keys
    finally:
        await consumer.stop()


async def test_a_jobs_priority_is_its_predictions_and_picks_its_topic(idle_stack: Stack) -> None:
    stack = idle_stack
    status, job = await submit(stack, "embeddings", {"model": L6, "input": "urgent",
                                                     "priority": "interactive"})
    assert status == 202, job
    prediction = await (await stack.get(job["id"])).json()
    assert (prediction["priority"], prediction["kind"]) == ("interactive", "embeddings")
    topics = Topics(stack.settings.kafka.topic_prefix).all_requests(L6)
    holding = [priority for topic, priority in topics.items()
               if job["id"] in await record_keys(stack.settings, topic)]
    assert holding == [Priority.INTERACTIVE]
    status, plain = await submit(stack, "embeddings", {"model": L6, "input": "whenever"})
    assert status == 202
    assert (await (await stack.get(plain["id"])).json())["priority"] == "default"


async def test_a_bad_priority_is_422_and_writes_nothing(idle_stack: Stack) -> None:
    stack = idle_stack
    topics = Topics(stack.settings.kafka.topic_prefix)
    watched = [topics.events, *topics.all_requests(L6)]
    await ensure_topics(stack.settings.kafka, watched)
    before = await end_offsets(stack.settings, watched)
    status, problem = await submit(stack, "embeddings", {"model": L6, "input": "x",
                                                         "priority": "asap"})
    assert status == 422 and problem["errors"][0]["loc"] == ["body", "priority"]
    form = aiohttp.FormData({"model": "inferhook/whisper-tiny-en", "priority": "asap"})
    form.add_field("file", b"RIFF", filename="a.wav", content_type="audio/wav")
    async with stack.http.post(f"{stack.base_url}/v1/async/audio/transcriptions", data=form,
                               headers=stack.auth()) as response:
        assert response.status == 422
        assert ["body", "priority"] in [e["loc"] for e in (await response.json())["errors"]]
    assert await end_offsets(stack.settings, watched) == before
    assert await prediction_count(stack) == 0


async def test_openapi_shows_the_priority_of_every_kind(stack: Stack) -> None:
    async with stack.http.get(f"{stack.base_url}/openapi.json") as response:
        spec = await response.json()
    schemas = spec["components"]["schemas"]
    for kind in TaskKind:
        content = spec["paths"][f"/v1/async/{kind}"]["post"]["requestBody"]["content"]
        (media,) = content.values()
        schema = media["schema"]
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        priority = schema["properties"]["priority"]
        if "$ref" in priority:
            priority = schemas[priority["$ref"].rsplit("/", 1)[1]]
        found = priority.get("enum") or schemas[priority["allOf"][0]["$ref"].rsplit("/", 1)[1]]["enum"]
        assert found == [p.value for p in Priority], kind
