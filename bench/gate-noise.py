#!/usr/bin/env python3
"""Where the gate's noise is: per gate run directory (a.json, b.json, order.txt), per workload, in logs of
CPU time per op, each side centred on its own median:
  between  - standard deviation of the fork medians
  within   - mean standard deviation of the iterations inside one fork
  lag1     - correlation of the fork medians of forks run one after the other (either side)
  paired   - sd of the log ratio B/A within each pair, over sqrt(2) * between: 1 means pairing gains nothing
Usage: bench/gate-noise.py RUN_DIR...   (gate run directories: bench/regress commits ... --out RUN_DIR)"""
import json, math, os, re, statistics as st, sys

def forks(path):
    out = {}
    for run in json.load(open(path)):
        metric = run.get('secondaryMetrics', {}).get('cpu.time/op')
        if metric:
            out[run['params']['workload']] = metric['rawData']
    return out

def corr(x, y):
    mx, my = st.mean(x), st.mean(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return sxy / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))

for d in sys.argv[1:]:
    if not os.path.exists(os.path.join(d, 'order.txt')):
        continue
    sides = {'A': forks(os.path.join(d, 'a.json')), 'B': forks(os.path.join(d, 'b.json'))}
    # Fork ids: "A-01" (one fork runs every workload) or "A-flat-4K-01" (one leg per workload).
    order = re.findall(r'^\s*\d+ ([AB])-(?:(\S+)-)?(\d+)\s', open(os.path.join(d, 'order.txt')).read(), re.M)
    for workload in sides['A']:
        centre = {s: st.median(st.median(f) for f in sides[s][workload]) for s in 'AB'}
        seq, within = [], []
        for side, leg, index in order:
            if leg and leg != workload:
                continue
            raw = sides[side][workload][int(index) - 1]
            seq.append(math.log(st.median(raw) / centre[side]))
            within.append(st.stdev(math.log(v / centre[side]) for v in raw))
        a = [math.log(st.median(f)) for f in sides['A'][workload]]
        b = [math.log(st.median(f)) for f in sides['B'][workload]]
        between = math.sqrt((st.variance(a) + st.variance(b)) / 2)
        paired = st.stdev(y - x for x, y in zip(a, b)) / (math.sqrt(2) * between)
        print(f"{os.path.basename(d.rstrip('/')):13s} {workload:11s} forks {len(a):2d}  between {between:.3f}"
              f"  within {st.mean(within):.3f}  lag1 {corr(seq[:-1], seq[1:]):+.2f}  paired {paired:.2f}")
