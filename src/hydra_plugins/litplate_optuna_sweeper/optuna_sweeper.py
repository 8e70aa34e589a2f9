"""litplate's Hydra sweeper on current Optuna (the official plugin pins optuna < 3), chosen with
`hydra/sweeper=litplate_optuna`: a persistent study that many workers share (docs/sweeps.md)."""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before it is in
# sys.modules, where @dataclass then fails to resolve string annotations.
import contextlib
import logging
import math
import random
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep, Transformer
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from litplate.run.errors import UserInputError
from litplate.run.files import atomic_write
from litplate.run.sweep import read_job, sweep_lock

# Optuna and SQLAlchemy are imported when a sweep starts: Hydra imports every plugin at each start.

log = logging.getLogger(__name__)


@dataclass
class LitplateOptunaSweeperConf:
    _target_: str = "hydra_plugins.litplate_optuna_sweeper.optuna_sweeper.LitplateOptunaSweeper"
    # minimize or maximize what the task function returns: by default the run's optimized_mode.
    direction: str = "${oc.select:optimized_mode,min}imize"
    study_name: str = "litplate"
    # A SQLAlchemy URL (sqlite, postgresql, ...); null keeps the study in memory only.
    storage: Any = "sqlite:///${hydra.sweep.dir}/optuna.db"
    n_trials: int = 20  # trials run by this invocation (by each worker sharing a study)
    n_jobs: int = 1  # trials launched together (in parallel where the launcher can)
    seed: Any = None  # trial N's sampler is seeded with seed + N
    sampler: Any = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "_partial_": True}
    )
    params: Any = field(default_factory=dict)  # {parameter: Hydra sweep override}
    heartbeat_interval: int = 10  # seconds between a running trial's heartbeats
    grace_period: Any = None  # seconds without one after which it is failed (null: twice that)


ConfigStore.instance().store(
    group="hydra/sweeper", name="litplate_optuna", node=LitplateOptunaSweeperConf
)


class LitplateOptunaSweeper(Sweeper):
    def __init__(self, **options: Any) -> None:
        self.opts = LitplateOptunaSweeperConf(**options)  # sampler: a partial taking the seed
        if min(self.opts.n_trials, self.opts.n_jobs) < 1:
            raise ValueError("hydra.sweeper.n_trials and hydra.sweeper.n_jobs must be >= 1")

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> dict[str, Any] | None:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space, fixed = search_space(parser, self.opts.params, arguments)
        if not space:
            raise ValueError(
                "hydra.sweeper.params has nothing to search: give it parameters such as "
                "model.optimizer.lr: tag(log, interval(1e-4, 1e-1))"
            )
        sweep_dir = Path(self.config.hydra.sweep.dir)
        with warnings.catch_warnings():
            # Optuna's heartbeat is experimental and meant for Study.optimize; RDBStorage documents
            # it for ask/tell too, as used here.
            warnings.filterwarnings("ignore", r"Argument ``(heartbeat_interval|grace_period)``")
            warnings.filterwarnings("ignore", r"Heartbeat of storage is supposed to be used")
            warnings.filterwarnings("ignore", r".*fail_stale_trials is experimental")
            study = self._load_study()
            sweep_dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(sweep_dir / "multirun.yaml") as file:  # workers may share the folder
                OmegaConf.save(self.config, file)
            log.info(
                "Study %r (%s): %d earlier trials, %d more; search space: %s",
                self.opts.study_name,
                self.shown,
                len(study.trials),
                self.opts.n_trials,
                ", ".join(f"{name}={distribution}" for name, distribution in space.items()),
            )
            for start in range(0, self.opts.n_trials, self.opts.n_jobs):
                self._reconcile(study, sweep_dir)  # and fail stale trials, as Study.optimize does
                count = min(self.opts.n_jobs, self.opts.n_trials - start)
                trials = [self._ask(study, space) for _ in range(count)]
                with self._heartbeats(trials):
                    self._claim(study, sweep_dir, trials)
                    returns = self._launch(trials, [[*fixed, *_overrides(t)] for t in trials])
                for trial, job in zip(trials, returns, strict=True):
                    value = _finite(job.return_value) if job.status == JobStatus.COMPLETED else None
                    if value is None:
                        log.warning("Trial %d failed: %s", trial.number, " ".join(job.overrides))
                    _tell(study, trial, value)
            # The RUNNING trials left are other invocations': running elsewhere, or killed.
            self._reconcile(study, sweep_dir, wait=True)
        return self._write_best(study, sweep_dir)

    def _load_study(self) -> Any:
        import optuna

        self._rdb = self._storage()
        study = optuna.create_study(
            storage=self._rdb,
            sampler=self.opts.sampler(seed=self.opts.seed),
            study_name=self.opts.study_name,
            direction=self.opts.direction,
            load_if_exists=True,
        )
        where = f"study {self.opts.study_name!r} in {self.shown}"
        created = study.direction.name.lower()
        if created != self.opts.direction:
            raise UserInputError(f"{where} was created to {created}, not to {self.opts.direction}")
        # Its values are of one metric: a study from before this record adopts the run's.
        metric = self.config.get("optimized_metric")
        recorded = study.user_attrs.get("optimized_metric")
        if recorded is None:
            study.set_user_attr("optimized_metric", metric)
        elif recorded != metric:
            raise UserInputError(
                f"{where} optimizes optimized_metric={recorded}, not {metric}: continue it with "
                f"optimized_metric={recorded}, or start another with hydra.sweeper.study_name"
            )
        if self._rdb is not None:
            self._study_id = self._rdb.get_study_id_from_name(self.opts.study_name)
        return study

    def _storage(self) -> Any:
        """Optuna's RDBStorage on `storage` (None: in memory); a bad URL or a missing driver is
        the user's to fix."""
        import optuna
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

        self.shown = self.opts.storage or "memory"  # the URL without its password, once parsed
        for attempt in range(5 if self.opts.storage else 0):
            try:
                url = make_url(self.opts.storage)
                self.shown = url.render_as_string(hide_password=True)
                if url.get_backend_name() == "sqlite" and url.database:  # sqlite makes no folder
                    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
                return optuna.storages.RDBStorage(
                    self.opts.storage,
                    heartbeat_interval=self.opts.heartbeat_interval,
                    grace_period=self.opts.grace_period,
                )
            except ImportError:
                fix = ": pip install -e '.[postgres]' (psycopg 3, for postgresql+psycopg:// URLs)"
                raise UserInputError(
                    f"hydra.sweeper.storage={self.shown}: its database driver "
                    f"{url.get_driver_name()} is not installed"
                    + (fix if url.get_backend_name() == "postgresql" else "")
                ) from None
            except (ArgumentError, OperationalError) as error:
                reason = " ".join(str(getattr(error, "orig", None) or error).split())
                raise UserInputError(f"hydra.sweeper.storage={self.shown}: {reason}") from None
            except (IntegrityError, ProgrammingError):
                # Workers started together on an empty database race to create Optuna's tables.
                if attempt == 4:
                    raise
                time.sleep(random.uniform(0.2, 1))
        return None

    def _ask(self, study: Any, space: dict[str, Any]) -> Any:
        """A new trial, drawn by a sampler seeded with seed + its number: unique in the study, so
        workers sharing it draw different values."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        trial = study.ask()
        self._beat([trial])  # at once: a trial without a heartbeat never goes stale
        seed = None if self.opts.seed is None else self.opts.seed + trial.number
        study.sampler = self.opts.sampler(seed=seed)
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
        for trial in trials:
            try:
                (sweep_dir / str(trial.number)).mkdir()
            except FileExistsError:
                for asked in trials:
                    _tell(study, asked, None)
                raise UserInputError(
                    f"{sweep_dir / str(trial.number)} already holds a job, not one of study "
                    f"{self.opts.study_name!r} in {self.shown}: choose another "
                    "hydra.sweeper.study_name or hydra.sweep.dir"
                ) from None

    def _launch(self, trials: list[Any], overrides: list[list[str]]) -> list[JobReturn]:
        """Job N for trial N: one launch per run of consecutive numbers (a launch numbers its jobs
        on from its first; other workers' trials may come between ours)."""
        returns: list[JobReturn] = []
        for _, run in groupby(range(len(trials)), key=lambda i: trials[i].number - i):
            batch = list(run)
            returns += self.launcher.launch(
                [overrides[i] for i in batch], initial_job_idx=trials[batch[0]].number
            )
        return returns

    def _reconcile(self, study: Any, sweep_dir: Path, wait: bool = False) -> None:
        """Finish other invocations' RUNNING trials from what their jobs left, else FAIL them once
        stale; with `wait`, for up to the grace period, then leave them to their process."""
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        grace = self.opts.grace_period or 2 * self.opts.heartbeat_interval
        deadline = time.monotonic() + grace + self.opts.heartbeat_interval
        while True:
            running = study.get_trials(deepcopy=False, states=[TrialState.RUNNING])
            left = {t.number for t in running if not self._finish_from_files(study, t, sweep_dir)}
            fail_stale_trials(study)
            for trial in study.get_trials(deepcopy=False, states=[TrialState.FAIL]):
                if trial.number in left:
                    log.warning(
                        "Trial %d of another run: no heartbeat and no result, FAIL", trial.number
                    )
                    left.remove(trial.number)
            if not (wait and left) or time.monotonic() > deadline:
                break
            time.sleep(1)
        if wait and left:
            log.warning(
                "Trials %s of another run are RUNNING and still beating: left to the worker "
                "running them",
                sorted(left),
            )

    def _finish_from_files(self, study: Any, trial: Any, sweep_dir: Path) -> bool:
        """Tell `trial` what its finished job left (metrics.json's value, or FAIL for
        failure.json); False while its job runs, or if it was killed."""
        job_dir = sweep_dir / str(trial.number)
        if not (job_dir / ".hydra" / "hydra.yaml").is_file():
            return False  # its job has not started (its parameters may not even be drawn yet)
        _, overrides, metrics, error = read_job(job_dir)
        if (metrics is None and error is None) or not set(_overrides(trial)) <= set(overrides):
            return False  # not finished, or not this trial's job (none, or another study's)
        metric = self.config.get("optimized_metric")
        value = _finite((metrics or {}).get(metric))
        state = _tell(study, trial.number, value)
        outcome = "failed" if value is None else f"finished, {metric}={value}"
        log.info("Trial %d of another run: its job %s, %s", trial.number, outcome, state)
        return True

    @contextmanager
    def _heartbeats(self, trials: list[Any]) -> Iterator[None]:
        """Optuna heartbeats for `trials` while their jobs run (ask/tell records none itself)."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.opts.heartbeat_interval):
                self._beat(trials)

        thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _beat(self, trials: list[Any]) -> None:
        if self._rdb is not None:  # a study in memory has no heartbeats
            for trial in trials:
                number = trial.number
                trial_id = self._rdb.get_trial_id_from_study_id_trial_number(self._study_id, number)
                self._rdb.record_heartbeat(trial_id)

    def _write_best(self, study: Any, sweep_dir: Path) -> dict[str, Any] | None:
        """best_params.yaml, the study's best trial, written under the sweep lock: the file written
        last holds the study read last."""
        with sweep_lock(sweep_dir):
            states = Counter(trial.state.name for trial in study.get_trials(deepcopy=False))
            if not states["COMPLETE"]:
                log.warning(
                    "Study %r has no completed trial: no best_params.yaml", study.study_name
                )
                return None
            best = study.best_trial
            result = {
                "study_name": study.study_name,
                "storage": self.shown if self.opts.storage else None,
                "direction": self.opts.direction,
                "trials": states.total(),
                "completed": states["COMPLETE"],
                "failed": states["FAIL"],
                "best_trial": best.number,
                "best_value": best.value,
                "best_params": best.params,
                # Paste after `python scripts/train.py` (with this search's fixed overrides).
                "best_overrides": " ".join(_overrides(best)),
            }
            path = sweep_dir / "best_params.yaml"
            with atomic_write(path) as file:
                OmegaConf.save(OmegaConf.create(result), file)
        log.info(
            "Best of %(trials)d trials: #%(best_trial)d, value %(best_value)s, "
            "%(best_overrides)s -> %(path)s",
            {**result, "path": path},
        )
        return result


def search_space(
    parser: OverridesParser, params: dict[str, Any], arguments: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """The Optuna distributions to sample, and the fixed overrides every job gets; an argument
    replaces the entry of `params` of the same key."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    lines = [f"{key}={value}" for key, value in params.items()] + arguments
    overrides = {o.get_key_element(): o for o in parser.parse_overrides(lines)}
    space: dict[str, Any] = {}
    fixed: list[str] = []
    for key, override in overrides.items():
        value = override.value()
        if isinstance(value, ChoiceSweep):
            choices = override.sweep_iterator(transformer=Transformer.encode)
            space[key] = CategoricalDistribution(list(choices))
        elif isinstance(value, RangeSweep):  # shuffle() means nothing to a sampler
            values = list(override.sweep_iterator(transformer=Transformer.identity))
            if not values:
                raise ValueError(f"{override.input_line}: the range is empty")
            low, high, step = min(values), max(values), abs(value.step)
            if all(isinstance(v, int) for v in values):
                space[key] = IntDistribution(low, high, step=int(step))
            else:
                space[key] = FloatDistribution(low, high, step=step)
        elif isinstance(value, IntervalSweep):  # Hydra's interval is always a float one
            space[key] = FloatDistribution(value.start, value.end, log="log" in value.tags)
        elif override.is_sweep_override():
            raise ValueError(
                f"{override.input_line}: the Optuna sweeper takes choice, range or interval"
            )
        else:
            fixed.append(f"{key}={override.get_value_element_as_str()}")
    return space, fixed


def _overrides(trial: Any) -> list[str]:
    return [f"{name}={Transformer.str(value)}" for name, value in trial.params.items()]


def _finite(value: Any) -> float | None:
    """`value` as a finite float, else None: a failed trial."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _tell(study: Any, trial: Any, value: float | None) -> str:
    """Tell Optuna a trial's value, None for a failed trial; returns its state's name."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    state = TrialState.FAIL if value is None else TrialState.COMPLETE
    with contextlib.suppress(UpdateFinishedTrialError):  # told meanwhile from its job's files
        study.tell(trial, value, state=state, skip_if_finished=True)
    return state.name
