"""Calibrate a routing policy on a small labelled sample, step by step.

Run it from the repository root (it needs the extras: pip install -e '.[eval]'):

    python examples/calibrate_sample.py [OUTPUT_DIR]

It runs the embedded local model on the 40 SQuAD 2.0 questions of
``examples/data/squad2_rag_sample.jsonl`` (questions over a passage, half of which the
passage does not answer), fits a policy that stays within two points of cloud-only
accuracy, prints the report, and saves the policy, the trade-off curve and its plot
(default OUTPUT_DIR: ``calibration-output``). The same is one command:

    langchain-hybrid calibrate --data examples/data/squad2_rag_sample.jsonl \\
        --cloud-accuracy 0.85 --target-accuracy 0.83 --output policy.json --plot curve.png

40 examples are enough to see how it works, not to trust the figures: calibrate on a few
hundred examples of your own workload.
"""

from __future__ import annotations

import sys
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from langchain_hybrid import RoutingPolicy
from langchain_hybrid.calibration import CalibrationResult, CloudOutcomes, calibrate
from langchain_hybrid.evaluation import collect_local, load_dataset, prompt_for

SAMPLE = Path(__file__).parent / "data" / "squad2_rag_sample.jsonl"


def main(
    local: BaseChatModel | None = None, out_dir: Path | str = "calibration-output"
) -> CalibrationResult:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    # %% 1. The data: labelled questions. A row with a "context" is asked over that passage
    # (a RAG prompt); "answerable": false rows are right only when the answer declines.
    examples = load_dataset(SAMPLE)
    unanswerable = sum(ex.answerable is False for ex in examples)
    print(f"{len(examples)} examples, {unanswerable} of them unanswerable from their passage")

    # %% 2. The local model answers each example once. The records keep each answer with
    # its log-probs, finish reason and correctness, so any policy can be replayed on them
    # without running the model again (save them with save_records to reuse them).
    if local is None:
        from langchain_hybrid import ChatTransformers

        local = ChatTransformers()
    records = collect_local(examples, local, max_tokens=32, batch_size=16)
    right = sum(r.correct for r in records)
    print(f"the local model is right on {right} of {len(records)}")

    # %% 3. What the cloud scores on the same examples. This sample has no recorded cloud
    # answers, so we assume an accuracy (the policy's fitted_on says it is an assumption);
    # with recorded answers use CloudOutcomes.replayed(examples, "gpt-4-1106-preview").
    cloud = CloudOutcomes.assumed(0.85)

    # %% 4. Calibrate for one target: here the hybrid's expected accuracy within two points
    # of cloud-only. It compares the scorers (AUROC; the learned one out-of-fold), picks
    # the scorer and threshold that keep the most answers local while meeting the target,
    # measures that point on folds not used to fit it, and fits early escalation. If no
    # threshold meets the target, it says so and returns the cloud-only policy.
    result = calibrate(
        records, target_accuracy=0.83, cloud=cloud, dataset=SAMPLE.name, folds=5, seed=0
    )
    print(result.report())

    # %% 5. Save the policy (with what it was fitted on) and the trade-off curve.
    result.policy.save(out / "policy.json")
    result.curve.save(out / "curve.json")
    result.curve.plot(out / "curve.png", title="SQuAD 2.0 sample: hybrid accuracy vs cloud share")
    print(f"saved {out / 'policy.json'}, {out / 'curve.json'} and {out / 'curve.png'}")

    # %% 6. Use it: the policy loads into ChatHybrid,
    #     ChatHybrid(local=local, cloud=ChatOpenAI(model="gpt-4o"), policy=policy)
    # Without a cloud here, we ask the policy what it does with the first local answer.
    policy = RoutingPolicy.load(out / "policy.json")
    verdict = policy.judge(records[0].answer, max_tokens=32, context=list(prompt_for(examples[0])))
    print(f"first question: {'cloud' if verdict.escalate else 'local'} ({verdict.reason})")
    return result


if __name__ == "__main__":
    main(out_dir=sys.argv[1] if len(sys.argv) > 1 else "calibration-output")
