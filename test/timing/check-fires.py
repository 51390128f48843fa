import json, os, sys, glob, collections
base, created, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
for node in ["n1","n2","n3"]:
    q = os.path.join(base, node, "queue")
    files = glob.glob(q+"/job-*") + glob.glob(q+"/archive/*/job-*")
    fires = collections.defaultdict(list)
    for f in files:
        j = json.load(open(f))
        s = j.get("schedule")
        if s: fires[s["fire"]].append(j["id"])
    times = sorted(fires)
    dup = {t: ids for t, ids in fires.items() if len(ids) > 1}
    # fire times due in (created, last fire]
    first = (int(created)//2 + 1)*2
    expected = [t for t in range(first, int(times[-1])+1, 2)] if times else []
    missing = [t for t in expected if float(t) not in fires]
    rec = open(os.path.join(q, "schedule-every2s")).read() if os.path.exists(os.path.join(q, "schedule-every2s")) else None
    print(f"{node}: {len(files)} job files, {len(times)} fire times with a job, duplicates: {dup}, fire times in [{first}, {int(times[-1]) if times else '-'}] without a job: {missing}; record: {rec}")
