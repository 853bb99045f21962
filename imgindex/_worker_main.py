"""Entry point of a worker process (``python -m imgindex._worker_main``); see imgindex.workers."""

from imgindex.workers import serve

if __name__ == "__main__":
    serve()
