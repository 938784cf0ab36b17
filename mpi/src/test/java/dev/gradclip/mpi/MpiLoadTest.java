package dev.gradclip.mpi;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A missing libmpi and a library that is not Open MPI fail {@code Mpi.init()} with a clear
 * exception, before MPI_Init, so these run in the test JVM itself.
 */
class MpiLoadTest {

    @AfterEach
    void restoreLibrary() {
        System.clearProperty(Mpi.LIBRARY_PROPERTY);
    }

    @Test
    void aMissingLibmpiSaysHowToInstallOpenMpi() {
        System.setProperty(Mpi.LIBRARY_PROPERTY, "libgradclip-no-such-mpi.so.40");
        MpiException e = assertThrows(MpiException.class, Mpi::init);
        assertTrue(e.getMessage().contains("cannot load libgradclip-no-such-mpi.so.40"), e.getMessage());
        assertTrue(e.getMessage().contains("apt-get install openmpi-bin libopenmpi-dev"), e.getMessage());
        assertTrue(e.getMessage().contains(Mpi.LIBRARY_PROPERTY), e.getMessage());
    }

    /** Stands in for MPICH: a loadable library without Open MPI's handle globals (here the C library). */
    @Test
    void aLibraryWithoutOpenMpisHandlesIsRejectedByName() {
        System.setProperty(Mpi.LIBRARY_PROPERTY, "libc.so.6");
        MpiException e = assertThrows(MpiException.class, Mpi::init);
        assertTrue(e.getMessage().contains("libc.so.6 is not Open MPI"), e.getMessage());
        assertTrue(e.getMessage().contains("ompi_mpi_comm_world"), e.getMessage());
        assertTrue(e.getMessage().contains("MPICH"), e.getMessage());
    }

    /** The timeout is checked first, before any library is loaded. */
    @Test
    void aTimeoutThatIsNotPositiveIsRejectedByName() {
        System.setProperty(Mpi.LIBRARY_PROPERTY, "libgradclip-no-such-mpi.so.40");
        for (Duration timeout : new Duration[] {Duration.ZERO, Duration.ofNanos(-1)}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Mpi.init(timeout));
            assertTrue(e.getMessage().contains("timeout must be positive"), e.getMessage());
        }
        NullPointerException e = assertThrows(NullPointerException.class, () -> Mpi.init(null));
        assertTrue(e.getMessage().contains("timeout"), e.getMessage());
    }
}
