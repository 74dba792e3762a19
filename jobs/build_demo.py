"""Build the WordNet reverse-dictionary demo corpus.

Locally:    python -m jobs.build_demo --config jobs/configs/build_demo.yaml
On a Ray cluster:
    ray job submit --working-dir . -- python -m jobs.build_demo --config jobs/configs/build_demo.yaml size=full
"""

from __future__ import annotations

from disranker.config import load_config
from disranker.data import demo
from jobs._args import parse


def main(argv: list[str] | None = None) -> None:
    config_path, overrides = parse(argv, __doc__)
    config = load_config(demo.DemoCorpusConfig, config_path, overrides)
    print(f"demo corpus written to {demo.run(config)}")


if __name__ == "__main__":
    main()
