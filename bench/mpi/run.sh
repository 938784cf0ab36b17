#!/usr/bin/env bash
# Sharded clip over Open MPI: runs ShardedClipDemo (GPT-2-small shapes, whole tensors balanced over
# the ranks) under mpirun -np 2 and -np 4. Each run prints every rank's norm bits beside the
# single-process norm, the median local clip time per rank, the median clip time with the Mpi
# all-reduce hook, what the hook adds, and the latency of one all-reduce of the partial's words.
#   bench/mpi/run.sh                 # -np 2 and -np 4, 15 timed clips each
#   RANKS="4" REPS=31 bench/mpi/run.sh --shapes=resnet50
# Needs Open MPI (apt-get install openmpi-bin libopenmpi-dev) and a JDK 25 (JAVA=/path/to/bin/java).
set -euo pipefail
cd "$(dirname "$0")/../.."
java=${JAVA:-}
if [ -z "$java" ]; then
  for candidate in /usr/lib/jvm/*/bin/java "$(command -v java || true)"; do
    [ -x "$candidate" ] || continue
    version=$("$candidate" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
    if [ "${version%%.*}" -ge 25 ] 2>/dev/null; then java=$candidate; break; fi
  done
fi
[ -n "$java" ] || { echo "run.sh: no JDK 25 found; set JAVA=/path/to/jdk-25/bin/java" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "run.sh: no mpirun; apt-get install openmpi-bin libopenmpi-dev" >&2; exit 2; }
./mvnw -q -pl examples -am compile
cp="core/target/classes:mpi/target/classes:examples/target/classes"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(mpirun --version | head -1); java: $java"
for np in ${RANKS:-2 4}; do
  echo
  echo "== mpirun -np $np"
  mpirun --allow-run-as-root --oversubscribe -np "$np" "$java" --add-modules=jdk.incubator.vector \
      --enable-native-access=ALL-UNNAMED -Xmx2g -cp "$cp" \
      dev.gradclip.demo.ShardedClipDemo --reps="${REPS:-15}" "$@" 2>&1 | grep -v '^WARNING: Using incubator modules'
done
