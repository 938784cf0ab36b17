package dev.gradclip.mpi;

/**
 * Open MPI could not be loaded or initialized, or an MPI call returned an error code. The message
 * says which call failed and, for an error code, Open MPI's own text for it.
 */
public final class MpiException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    /** The failed call's MPI error code; 0 when loading or initializing failed without one. */
    private final int errorCode;

    MpiException(String message) {
        super(message);
        this.errorCode = 0;
    }

    MpiException(String message, int errorCode) {
        super(message);
        this.errorCode = errorCode;
    }

    /**
     * The MPI error code (MPI_SUCCESS is 0) when an MPI call failed, else 0.
     *
     * @return the error code, or 0
     */
    public int errorCode() {
        return errorCode;
    }
}
