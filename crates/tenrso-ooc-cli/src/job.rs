//! [`Job`]: the processes running this command — one, or the ranks of an
//! MPI job (`mpirun -np N tenrso-ooc …`, feature `mpi`) — and the fail-stop
//! rule: an error or a panic on any rank ends every rank.

use std::process::ExitCode;
use std::sync::Arc;

use tenrso_ooc::distributed::Ranks;
#[cfg(not(feature = "mpi"))]
use tenrso_ooc::distributed::SingleProcess;

/// The processes running this command.
pub struct Job {
    /// This process's place among them.
    pub ranks: Arc<dyn Ranks>,
    /// MPI stays initialised while the job lives (dropping it finalises).
    #[cfg(feature = "mpi")]
    _mpi: tenrso_ooc::distributed::MpiEnvironment,
}

impl Job {
    /// Joins the MPI job this process was started in (one rank without
    /// `mpirun`); in the build without `mpi`, one process. Under several
    /// ranks a panic anywhere ends the whole job, after its message.
    ///
    /// # Errors
    /// When MPI cannot start with the threading the engine needs.
    #[cfg(feature = "mpi")]
    pub fn start() -> Result<Self, String> {
        let mpi = tenrso_ooc::distributed::init_mpi().map_err(|e| e.to_string())?;
        let ranks = mpi.ranks();
        if ranks.is_distributed() {
            // A panicking rank would otherwise leave the others waiting in
            // a collective forever.
            let report = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                report(info);
                tenrso_ooc::distributed::abort_job(101);
            }));
        }
        Ok(Self {
            ranks: Arc::new(ranks),
            _mpi: mpi,
        })
    }

    /// One process (the build without `mpi`).
    #[cfg(not(feature = "mpi"))]
    pub fn start() -> Result<Self, String> {
        Ok(Self {
            ranks: Arc::new(SingleProcess),
        })
    }

    /// True on the rank that prints (every rank of one).
    pub fn is_root(&self) -> bool {
        self.ranks.is_root()
    }

    /// What starts this rank's error lines: nothing in one process.
    pub fn error_prefix(&self) -> String {
        if self.ranks.is_distributed() {
            format!(
                "error (rank {} of {}): ",
                self.ranks.rank(),
                self.ranks.size()
            )
        } else {
            "error: ".to_string()
        }
    }

    /// Ends a failed command: in one process, with `code`; under several
    /// ranks, every rank at once (`MPI_Abort`), since the others may be
    /// waiting for this one.
    pub fn fail(&self, code: u8) -> ExitCode {
        #[cfg(feature = "mpi")]
        if self.ranks.is_distributed() {
            tenrso_ooc::distributed::abort_job(i32::from(code));
        }
        ExitCode::from(code)
    }
}

/// The line that refuses a command that does not run under several ranks.
pub fn refuse_distributed(command: &str, ranks: usize) -> String {
    format!(
        "`{command}` runs in one process (not yet under MPI): run it without mpirun, not with {ranks} ranks"
    )
}
