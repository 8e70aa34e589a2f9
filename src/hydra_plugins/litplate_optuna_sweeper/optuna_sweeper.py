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
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before it is in
# sys.modules, where @dataclass then fails to resolve string annotations.
import logging
import math
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
    n_trials: int = 20  # trials run by this invocation
    n_jobs: int = 1  # trials launched together (in parallel where the launcher can)
    # Sampler seed; a resumed study's sampler is seeded with seed + the number of earlier trials.
    seed: Any = None
    sampler: Any = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "_partial_": True}
    )
    params: Any = field(default_factory=dict)  # {parameter: override}, see above


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
    ) -> None:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be minimize or maximize, got {direction!r}")
        if n_trials < 1 or n_jobs < 1:
            raise ValueError(f"n_trials and n_jobs must be >= 1, got {n_trials} and {n_jobs}")
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
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        study = self._load_study()
        log.info(
            "Study %r (%s): %d earlier trials, %d more; search space: %s",
            self.study_name,
            self.storage or "in memory",
            len(study.trials),
            self.n_trials,
            ", ".join(f"{name}={distribution}" for name, distribution in space.items()),
        )
        for start in range(0, self.n_trials, self.n_jobs):
            trials = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - start))]
            overrides = [
                [*fixed, *(f"{name}={Transformer.str(v)}" for name, v in trial.params.items())]
                for trial in trials
            ]
            returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
            for trial, job_return in zip(trials, returns, strict=True):
                value = _value(job_return)
                if value is None:
                    log.warning("Trial %d failed: %s", trial.number, " ".join(job_return.overrides))
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, value)
        return self._report_best(study, sweep_dir)

    def _load_study(self) -> Any:
        import optuna

        if self.storage:
            _make_sqlite_dir(self.storage)
        study = optuna.create_study(
            storage=self.storage or None,
            study_name=self.study_name,
            direction=self.direction,
            load_if_exists=True,
        )
        if study.direction.name.lower() != self.direction:
            raise ValueError(
                f"study {self.study_name!r} in {self.storage} was created to "
                f"{study.direction.name.lower()}, not to {self.direction}"
            )
        # A resumed study must not replay the samples of the earlier invocations.
        seed = None if self.seed is None else self.seed + len(study.trials)
        study.sampler = self.sampler(seed=seed)
        return study

    def _report_best(self, study: Any, sweep_dir: Path) -> dict[str, Any] | None:
        from optuna.trial import TrialState

        states = [trial.state for trial in study.trials]
        if TrialState.COMPLETE not in states:
            log.warning("Study %r has no completed trial: no %s", self.study_name, BEST_PARAMS_FILE)
            return None
        best = study.best_trial
        result = {
            "study_name": self.study_name,
            "storage": self.storage,
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
        OmegaConf.save(OmegaConf.create(result), path)
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


def _make_sqlite_dir(url: str) -> None:
    """sqlite creates the database file, not the folder it goes in."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
