#!/usr/bin/env bash
# Runs a command in a session of its own (a process group that a cleanup can stop whole) at a
# low CPU priority: `scripts/lowprio.sh NICE CMD [ARG...]`, NICE from 1 to 19.
#
# `nice` alone is not enough there: a new session gets its own autogroup when the kernel has
# them (kernel.sched_autogroup_enabled), and the scheduler shares the CPU evenly between
# autogroups whatever the nice values inside each, so a niced job started with setsid would
# still take half the machine from the build beside it. The autogroup is niced too.
set -euo pipefail
level=$1
shift
if [ "$(ps -o sid= -p $$ | tr -d ' ')" != "$$" ]; then
  # A process-group leader is forked by setsid; --wait keeps its status for the caller.
  exec setsid --wait "$0" "$level" "$@"
fi
echo "$level" >/proc/self/autogroup 2>/dev/null || true
exec nice -n "$level" "$@"
