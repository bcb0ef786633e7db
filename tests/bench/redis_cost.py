"""Redis's cost per job over one benchmark phase, for every peer of make bench-queue.

  redis_cost.py PORT STATE reset          CONFIG RESETSTAT, and note Redis's CPU time
  redis_cost.py PORT STATE report JOBS LABEL
      print two "name value unit" lines for the phase since the reset:
        LABEL_redis_cmd_us   the sum of every INFO commandstats usec total, per job.
            A command a script (EVALSHA) or a transaction (EXEC) runs is counted in its
            own row and again in the EVALSHA/EXEC row that includes it: an upper bound
            of the time spent in commands, not counting reading requests and writing
            replies (the definition the queue targets use). Redis times commands by the
            wall clock: when other processes take its core mid-command (consumers on
            the same 2 cores), the figure grows although Redis did no more work.
        LABEL_redis_cpu_us   the redis-server main thread's CPU time (user + sys, INFO
            cpu), per job: everything Redis spent, network included.
Runs redis-cli, so it works from the C bench, Celery's python and BullMQ's node alike.
"""
import re
import subprocess
import sys


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", port, *args], check=True, capture_output=True,
                          text=True).stdout


def cpu(port):
    info = cli(port, "INFO", "cpu")
    f = dict(re.findall(r"^(used_cpu_\w+):([\d.]+)", info, re.M))
    return float(f["used_cpu_user_main_thread"]) + float(f["used_cpu_sys_main_thread"])


def main():
    port, state, what = sys.argv[1], sys.argv[2], sys.argv[3]
    if what == "reset":
        cli(port, "CONFIG", "RESETSTAT")
        with open(state, "w") as f:
            f.write(repr(cpu(port)))
        return
    jobs, label = int(sys.argv[4]), sys.argv[5]
    used = cpu(port) - float(open(state).read())
    usec = sum(int(u) for name, u in
               re.findall(r"^cmdstat_(\S+?):calls=\d+,usec=(\d+)", cli(port, "INFO", "commandstats"),
                          re.M)
               if not name.startswith(("config", "info")))
    print(f"{label}_redis_cmd_us {usec / jobs:.1f} us/job")
    print(f"{label}_redis_cpu_us {used * 1e6 / jobs:.1f} us/job", flush=True)


if __name__ == "__main__":
    main()
