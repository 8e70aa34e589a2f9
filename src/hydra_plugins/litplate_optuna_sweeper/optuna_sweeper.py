"""A small Hydra sweeper on current Optuna (>= 4): `hydra/sweeper=litplate_optuna`.

Why not the official hydra-optuna-sweeper: its last release (1.3.0) pins optuna < 3 and its
sqlite storage fails under SQLAlchemy 2, so it cannot run a persistent study on today's stack.
This one keeps only what litplate needs, with the official plugin's search-space syntax:

    hydra:
      sweeper:
        params:                        # Hydra's override syntax, one entry per parameter
          model.optimizer.lr: tag(log, interval(1e-4, 1e-1))   # float, log scale
          model/optimizer: choice(sgd, adam)                   # categorical (a config group too)
          trainer.max_epochs: range(50, 350, step=50)          # int 50..300 (stop excluded)

`interval(a, b)` is a float in [a, b] (`tag(log, ...)`: on a log scale); `range(start, stop, step)`
takes the values Hydra's range gives (stop excluded; ints when all are ints);
`choice(...)` picks one of its values; a plain value fixes the parameter. An override on the
command line replaces the entry of the same key (`trainer.max_epochs=choice(5,10)` or
`trainer.max_epochs=5`).

Each round asks Optuna for `n_jobs` trials, launches them through Hydra's launcher and tells Optuna
their results: a job that failed, or returned no finite value, is a FAIL trial. The study lives in
`storage` (a SQLAlchemy URL; null keeps it in memory) under `study_name`: running again with the
same storage and name continues it with `n_trials` more trials. A job's number is its trial's
number, so a resumed study's jobs get new directories beside the earlier ones. At the end,
`best_params.yaml` in the sweep dir holds the best trial's value and parameters.

Many workers can share one study (a PostgreSQL storage, started in N shells or N SLURM jobs): each
asks Optuna for its own `n_trials` trials, trial numbers are unique in the study, so are the job
directories (claimed here before the jobs start), and trial N's sampler is seeded with seed + N, so
workers started together do not draw the same values.

A killed invocation (SIGKILL, a lost SSH session) leaves its trials RUNNING in the storage. While
its trials run, the sweeper records Optuna heartbeats for them every `heartbeat_interval` seconds
(Optuna's RDBStorage heartbeat). Other invocations of the study, at their start and end, reconcile
the RUNNING trials that are not theirs from their job directories: a job that wrote metrics.json is
told its value (`optimized_metric`), one that wrote failure.json is failed, and one that did neither
is failed by `optuna.storages.fail_stale_trials` once its heartbeat is older than `grace_period`
(called before each round, as Study.optimize does, and waited for at the end of the invocation
when needed, so a job that finishes meanwhile still counts). A trial still beating is another
worker's, left to it.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before it is in
# sys.modules, where @dataclass then fails to resolve string annotations.
import logging
import math
import random
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from litplate.run.errors import UserInputError
from litplate.run.files import atomic_write
from litplate.run.sweep import read_job, sweep_lock

# Optuna is imported only when a sweep starts: Hydra imports every plugin module on each start.

log = logging.getLogger(__name__)

BEST_PARAMS_FILE = "best_params.yaml"


@dataclass
class LitplateOptunaSweeperConf:
    _target_: str = "hydra_plugins.litplate_optuna_sweeper.optuna_sweeper.LitplateOptunaSweeper"
    direction: str = "minimize"  # or maximize: what the task function returns
    study_name: str = "litplate"
    # A SQLAlchemy URL (sqlite, postgresql, ...); null keeps the study in memory only.
    storage: Any = "sqlite:///${hydra.sweep.dir}/optuna.db"
    n_trials: int = 20  # trials run by this invocation (by each worker sharing a study)
    n_jobs: int = 1  # trials launched together (in parallel where the launcher can)
    # Sampler seed; trial N's sampler is seeded with seed + N (a resumed or shared study).
    seed: Any = None
    sampler: Any = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "_partial_": True}
    )
    params: Any = field(default_factory=dict)  # {parameter: override}, see above
    # Seconds between the heartbeats of running trials, and without one after which a RUNNING
    # trial of an earlier (killed) invocation is failed (null: 2 * heartbeat_interval).
    heartbeat_interval: int = 10
    grace_period: Any = None


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="litplate_optuna",
    node=LitplateOptunaSweeperConf,
    provider="litplate",
)


class LitplateOptunaSweeper(Sweeper):
    def __init__(
        self,
        direction: str,
        study_name: str,
        storage: str | None,
        n_trials: int,
        n_jobs: int,
        seed: int | None,
        sampler: Any,
        params: dict[str, Any],
        heartbeat_interval: int = 10,
        grace_period: int | None = None,
    ) -> None:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be minimize or maximize, got {direction!r}")
        if n_trials < 1 or n_jobs < 1:
            raise ValueError(f"n_trials and n_jobs must be >= 1, got {n_trials} and {n_jobs}")
        if heartbeat_interval < 1 or (grace_period is not None and grace_period < 1):
            raise ValueError(
                "heartbeat_interval and grace_period must be >= 1 s, got "
                f"{heartbeat_interval} and {grace_period}"
            )
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = 2 * heartbeat_interval if grace_period is None else grace_period
        self.direction = direction
        self.study_name = study_name
        self.storage = storage
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.seed = seed
        self.sampler = sampler  # a partial: called with the seed once the study is loaded
        self.params = dict(params or {})

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> dict[str, Any] | None:
        import optuna

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space, fixed = search_space(parser, self.params, arguments)
        if not space:
            raise ValueError(
                "hydra.sweeper.params has nothing to search: give it parameters such as "
                "model.optimizer.lr: tag(log, interval(1e-4, 1e-1))"
            )
        study = self._load_study()
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(sweep_dir / "multirun.yaml") as file:  # workers may share the folder
            OmegaConf.save(self.config, file)
        log.info(
            "Study %r (%s): %d earlier trials, %d more; search space: %s",
            self.study_name,
            _shown(self.storage) if self.storage else "in memory",
            len(study.trials),
            self.n_trials,
            ", ".join(f"{name}={distribution}" for name, distribution in space.items()),
        )
        self._reconcile(study, sweep_dir, _running(study))
        for start in range(0, self.n_trials, self.n_jobs):
            self._fail_stale(study)  # as Study.optimize does before each trial
            count = min(self.n_jobs, self.n_trials - start)
            trials = [self._ask(study, space) for _ in range(count)]
            overrides = [
                [*fixed, *(f"{name}={Transformer.str(v)}" for name, v in trial.params.items())]
                for trial in trials
            ]
            with self._heartbeats(trials):
                self._claim(study, sweep_dir, trials)
                returns = self._launch(trials, overrides)
            for trial, job_return in zip(trials, returns, strict=True):
                value = _value(job_return)
                if value is None:
                    log.warning("Trial %d failed: %s", trial.number, " ".join(job_return.overrides))
                    study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
                else:
                    study.tell(trial, value, skip_if_finished=True)
        # The RUNNING trials left are other invocations': running elsewhere, or killed.
        self._reconcile(study, sweep_dir, _running(study), wait=True)
        return self._report_best(study, sweep_dir)

    def _ask(self, study: Any, space: dict[str, Any]) -> Any:
        """A new trial, its parameters drawn by a sampler seeded with seed + its number (unique
        in the study, so workers sharing it draw different values)."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        with _quiet_heartbeat_warnings():
            trial = study.ask()
        if self._rdb is not None:  # at once: a trial without a heartbeat never goes stale
            self._rdb.record_heartbeat(self._trial_id(trial))
        study.sampler = self.sampler(seed=None if self.seed is None else self.seed + trial.number)
        for name, dist in space.items():
            if isinstance(dist, CategoricalDistribution):
                trial.suggest_categorical(name, dist.choices)
            elif isinstance(dist, IntDistribution):
                trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
            else:
                trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
        return trial

    def _claim(self, study: Any, sweep_dir: Path, trials: list[Any]) -> None:
        """Create the trials' job directories; one that exists holds a job of another study."""
        import optuna

        for trial in trials:
            try:
                (sweep_dir / str(trial.number)).mkdir()
            except FileExistsError:
                for asked in trials:
                    study.tell(asked, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
                raise UserInputError(
                    f"{sweep_dir / str(trial.number)} already holds a job, not one of study "
                    f"{self.study_name!r} in {_shown(self.storage)}: choose another "
                    "hydra.sweeper.study_name or hydra.sweep.dir"
                ) from None

    def _launch(self, trials: list[Any], overrides: list[list[str]]) -> list[JobReturn]:
        """Launch the jobs, job N for trial N: a launch numbers its jobs from its first on, and
        other workers' trials may come between ours."""
        returns: list[JobReturn] = []
        start = 0
        for end in range(1, len(trials) + 1):
            if end == len(trials) or trials[end].number != trials[end - 1].number + 1:
                returns += self.launcher.launch(
                    overrides[start:end], initial_job_idx=trials[start].number
                )
                start = end
        return returns

    def _reconcile(
        self, study: Any, sweep_dir: Path, numbers: set[int], wait: bool = False
    ) -> set[int]:
        """Finish the RUNNING trials `numbers` of other invocations from their job directories.

        A finished job's trial gets its metrics.json value (or FAIL from failure.json). With
        `wait`, the others are failed once their heartbeat is stale, waiting up to the grace
        period for that; a trial still beating after it is left to the process running it.
        Returns the numbers still RUNNING.
        """
        import optuna

        metric = self.config.get("optimized_metric")
        deadline = time.monotonic() + self.grace_period + self.heartbeat_interval
        while True:
            jobs = _job_dirs(sweep_dir)
            for trial in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
                if trial.number in numbers and trial.number in jobs:
                    self._finish_from_files(study, trial, jobs[trial.number], metric)
            numbers &= _running(study)
            if not wait or not numbers or self._rdb is None:
                return numbers
            numbers -= self._fail_stale(study)
            if not numbers:
                return numbers
            if time.monotonic() > deadline:
                log.warning(
                    "Trials %s of another run are RUNNING and still beating: left to the "
                    "worker running them",
                    sorted(numbers),
                )
                return numbers
            time.sleep(1)

    def _fail_stale(self, study: Any) -> set[int]:
        """Fail the RUNNING trials whose heartbeat is older than the grace period (their workers
        were killed); returns their numbers."""
        import optuna

        if self._rdb is None:
            return set()
        running = _running(study)
        with _quiet_heartbeat_warnings():
            optuna.storages.fail_stale_trials(study)
        states = [optuna.trial.TrialState.FAIL]
        failed = {t.number for t in study.get_trials(deepcopy=False, states=states)} & running
        for number in sorted(failed):
            log.warning("Trial %d of another run: no heartbeat and no result, FAIL", number)
        return failed

    def _finish_from_files(self, study: Any, trial: Any, job_dir: Path, metric: str | None) -> None:
        import optuna

        params = {f"{name}={Transformer.str(v)}" for name, v in trial.params.items()}
        _, overrides, metrics, error = read_job(job_dir)
        if not params <= set(overrides):
            return  # the directory of another study's job
        if error is not None or metrics is not None:
            value = metrics.get(metric) if metrics and metric else None
            finite = isinstance(value, (int, float)) and math.isfinite(value)
            state = optuna.trial.TrialState.COMPLETE if finite else optuna.trial.TrialState.FAIL
            study.tell(trial.number, value if finite else None, state=state, skip_if_finished=True)
            log.info(
                "Trial %d of another run: its job %s, %s",
                trial.number,
                f"finished, {metric}={value}" if finite else "failed",
                state.name,
            )

    @contextmanager
    def _heartbeats(self, trials: list[Any]) -> Iterator[None]:
        """Optuna heartbeats for `trials` while their jobs run (ask/tell has none of its own)."""
        if self._rdb is None:
            yield
            return
        ids = [self._trial_id(trial) for trial in trials]
        stop = threading.Event()

        def beat() -> None:
            while not stop.is_set():
                for id_ in ids:
                    self._rdb.record_heartbeat(id_)
                stop.wait(self.heartbeat_interval)

        for id_ in ids:  # before the jobs start, so a kill at once still leaves a heartbeat
            self._rdb.record_heartbeat(id_)
        thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _trial_id(self, trial: Any) -> int:
        study_id = self._rdb.get_study_id_from_name(self.study_name)
        return self._rdb.get_trial_id_from_study_id_trial_number(study_id, trial.number)

    def _load_study(self) -> Any:
        import optuna

        self._rdb = None
        if self.storage:
            _make_sqlite_dir(self.storage)
            self._rdb = self._storage()
        study = optuna.create_study(
            storage=self._rdb,
            sampler=self.sampler(seed=self.seed),
            study_name=self.study_name,
            direction=self.direction,
            load_if_exists=True,
        )
        if study.direction.name.lower() != self.direction:
            raise ValueError(
                f"study {self.study_name!r} in {_shown(self.storage)} was created to "
                f"{study.direction.name.lower()}, not to {self.direction}"
            )
        return study

    def _storage(self) -> Any:
        """Optuna's RDBStorage on `storage`; a missing driver or a bad URL is the user's to fix."""
        import optuna
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

        attempt = 0
        while True:
            attempt += 1
            try:
                with _quiet_heartbeat_warnings():
                    return optuna.storages.RDBStorage(
                        self.storage,
                        heartbeat_interval=self.heartbeat_interval,
                        grace_period=self.grace_period,
                    )
            except ImportError:
                url = make_url(self.storage)
                fix = ": pip install -e '.[postgres]' (psycopg 3, for postgresql+psycopg:// URLs)"
                raise UserInputError(
                    f"hydra.sweeper.storage={_shown(self.storage)}: its database driver "
                    f"{url.get_driver_name()} is not installed"
                    + (fix if url.get_backend_name() == "postgresql" else "")
                ) from None
            except (ArgumentError, OperationalError) as error:
                reason = " ".join(str(getattr(error, "orig", None) or error).split())
                raise UserInputError(
                    f"hydra.sweeper.storage={_shown(self.storage)}: {reason}"
                ) from None
            except (IntegrityError, ProgrammingError):
                # Workers started together on an empty database race to create Optuna's tables.
                if attempt == 5:
                    raise
                time.sleep(random.uniform(0.2, 1))

    def _report_best(self, study: Any, sweep_dir: Path) -> dict[str, Any] | None:
        # Workers sharing the sweep dir write in turn: the file written last holds the study read
        # last.
        with sweep_lock(sweep_dir):
            return self._write_best(study, sweep_dir)

    def _write_best(self, study: Any, sweep_dir: Path) -> dict[str, Any] | None:
        from optuna.trial import TrialState

        states = [trial.state for trial in study.trials]
        if TrialState.COMPLETE not in states:
            log.warning("Study %r has no completed trial: no %s", self.study_name, BEST_PARAMS_FILE)
            return None
        best = study.best_trial
        result = {
            "study_name": self.study_name,
            "storage": _shown(self.storage) if self.storage else None,
            "direction": self.direction,
            "trials": len(states),
            "completed": states.count(TrialState.COMPLETE),
            "failed": states.count(TrialState.FAIL),
            "best_trial": best.number,
            "best_value": best.value,
            "best_params": best.params,
            # Paste after `python scripts/train.py` (with this search's fixed overrides).
            "best_overrides": " ".join(f"{k}={Transformer.str(v)}" for k, v in best.params.items()),
        }
        path = sweep_dir / BEST_PARAMS_FILE
        with atomic_write(path) as file:
            OmegaConf.save(OmegaConf.create(result), file)
        log.info(
            "Best of %d trials: #%d, value %s, %s -> %s",
            len(states),
            best.number,
            best.value,
            result["best_overrides"],
            path,
        )
        return result


def search_space(
    parser: OverridesParser, params: dict[str, Any], arguments: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """The Optuna distributions to sample, and the fixed overrides every job gets.

    `params` comes first and the command line's `arguments` after it, so an argument replaces the
    entry of the same key.
    """
    overrides = parser.parse_overrides([f"{key}={value}" for key, value in params.items()])
    overrides += parser.parse_overrides(arguments)
    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in overrides:
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = f"{key}={override.get_value_element_as_str()}"
    return space, list(fixed.values())


def distribution(override: Override) -> Any:
    """The Optuna distribution of a sweep override: choice, range or interval."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    value = override.value()
    if isinstance(value, ChoiceSweep):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        values = list(override.sweep_iterator(transformer=Transformer.identity))
        if not values:
            raise ValueError(f"{override.input_line}: the range is empty")
        if value.shuffle:
            return CategoricalDistribution(values)
        low, high, step = min(values), max(values), abs(value.step)
        if all(isinstance(v, int) for v in values):
            return IntDistribution(low, high, step=int(step))
        return FloatDistribution(low, high, step=step)
    if isinstance(value, IntervalSweep):  # Hydra's interval is always a float one
        return FloatDistribution(value.start, value.end, log="log" in value.tags)
    raise ValueError(f"{override.input_line}: the Optuna sweeper takes choice, range or interval")


def _value(job_return: JobReturn) -> float | None:
    """The job's finite float result, or None for a failed job."""
    if job_return.status != JobStatus.COMPLETED:
        return None
    try:
        value = float(job_return.return_value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _running(study: Any) -> set[int]:
    import optuna

    states = [optuna.trial.TrialState.RUNNING]
    return {trial.number for trial in study.get_trials(deepcopy=False, states=states)}


def _job_dirs(sweep_dir: Path) -> dict[int, Path]:
    """The sweep's job directories by job number (a job's number is its trial's)."""
    job_dirs = [hydra_yaml.parent.parent for hydra_yaml in sweep_dir.rglob(".hydra/hydra.yaml")]
    return {read_job(job_dir)[0]: job_dir for job_dir in job_dirs}


@contextmanager
def _quiet_heartbeat_warnings() -> Iterator[None]:
    """Optuna marks its heartbeat experimental and meant for Study.optimize; here it is used as
    documented for RDBStorage, with ask/tell, on purpose."""
    with warnings.catch_warnings():
        for message in (
            r"Argument ``heartbeat_interval`` is an experimental feature",
            r"Argument ``grace_period`` is an experimental feature",
            r"Heartbeat of storage is supposed to be used with Study\.optimize",
            r".*fail_stale_trials is experimental",
        ):
            warnings.filterwarnings("ignore", message=message)
        yield


def _shown(url: str | None) -> str:
    """The storage URL without its password, for messages and best_params.yaml."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not url:
        return "memory"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _make_sqlite_dir(url: str) -> None:
    """sqlite creates the database file, not the folder it goes in."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
