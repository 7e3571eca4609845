"""Executors: consume request topics, run ONNX Runtime, emit lifecycle events.

    worker.py    the executor loop: consume → run → emit → commit, SIGTERM drain
    job.py       one prediction: its events in fixed sequence slots, once-only outcome
    batching.py  dynamic batching per model, RunOptions.terminate for cancels and timeouts
    pool.py      dedicated and pooled (LRU warm cache over a memory budget) models
    control.py   the control topic (cancel requests), read in full by every executor
    offsets.py   which request offsets may be committed
    runtime.py   loading a model folder into ORT sessions; running a batch (also for bench/)
    media.py     data: URI decoding (images, WAV audio)
    models/      the model folders (manifest.yaml, handler, build script)
"""
