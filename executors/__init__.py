"""Executors: consume request topics, run ONNX Runtime, emit lifecycle events.

    worker.py    the Executor (dedicated or pooled) put together; reconnects when Kafka is away
    consumer.py  the Kafka side: poll, pause, commit, dead-letter, lag, rebalance and SIGTERM drain
    serving.py   how one request is served: end it at once, load its model, or batch it
    job.py       one prediction: its states, its events in fixed sequence slots, one way to end
    batching.py  dynamic batching per model, RunOptions.terminate for cancels and timeouts
    pool.py      the models held: dedicated, or pooled (LRU warm cache over a memory budget)
    control.py   the control topic (cancel requests), read in full by every executor
    offsets.py   which request offsets may be committed
    attempts.py  runs lost to infrastructure: attempts counted on the control topic, the retry rule
    deadletter.py the dead-letter topic: undecodable records, requests whose retries are spent
    runtime.py   loading a model folder into ORT sessions; running a batch (also for bench/)
    media.py     data: URI decoding (images, WAV audio)
    convert/     build-time only: torch checkpoints read without torch, ONNX graph building
    models/      the model folders (manifest.yaml, handler, build script)

The deadline, queue-expiry and run-time rule is schemas.deadlines (the reaper uses it too).
"""
