/**
 * The Open MPI hook for gradclip's sharded clip: {@link dev.gradclip.mpi.Mpi} is an
 * {@link dev.gradclip.AllReduce} over {@code MPI_COMM_WORLD}, called through the foreign function API
 * (run with {@code --enable-native-access=dev.gradclip.mpi}, or {@code ALL-UNNAMED} on the class path).
 */
module dev.gradclip.mpi {
    requires transitive dev.gradclip;

    exports dev.gradclip.mpi;
}
