"""The daemon behind `ocrd watch`: inbox -> vision (worker pool) -> batched inference -> store.

Threads, all feeding bounded queues so that a flood of files keeps memory flat:

- intake (`intake_loop.Intake`): watches the inbox (`ocrd.intake.Inbox`), hashes each settled
  file and registers it in the store (pending, or a duplicate), many files per transaction;
  finishes the move of files whose outcome was committed by a process that died before moving
  them.
- main loop (`daemon.Daemon`, main thread): claims pending documents (`ocrd.store.claims`) while
  there is room, renews claims, talks to systemd (READY/STATUS/WATCHDOG/STOPPING, `notify`),
  handles SIGTERM (graceful stop) and SIGHUP (reload settings).
- worker pool: decodes pages and finds fields (`ocrd.pipeline.extract_fields`), submits the crops
  to the two batchers and fuses the answers (`ocrd.pipeline.fuse`), see `ocrd.engine`.
- two batchers (`ocrd.batching.Batcher`): one model call per batch of digit crops / line crops
  gathered across pages and files.
- committer (`outbox.Outbox`, a third `Batcher`): commits results + status of a group of
  documents in one transaction (group commit), and only then moves their files to processed/
  or failed/.

Start-up checks live in `startup`, counters and the /metrics endpoint in `metrics`, log set-up
in `log_setup`.

Exactly once: a file's row goes pending -> processing -> done | failed | duplicate; results are
committed before the file moves, so after a crash the restart either redoes the work (`finish`
replaces results, never duplicates them) or just completes the move.
"""

from ocrd.service.daemon import Daemon, run
from ocrd.service.log_setup import setup_logging
from ocrd.service.startup import StartupError, check_folders

__all__ = ["Daemon", "StartupError", "check_folders", "run", "setup_logging"]
