"""`python -m consultation_backup.demo --scale S`: load this domain's demo data (deterministic for a seed)."""

import argparse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consultation_backup.demo")
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.parse_args(argv)
    print("[consultation_backup] no demo data yet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
