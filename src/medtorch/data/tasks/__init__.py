"""Tasks: source files -> ArrayDataset. Importing this package registers every task."""

from medtorch.data.tasks import images, seizure, svmlight
from medtorch.data.tasks.registry import build_task, list_tasks, register_task

try:  # the ECG tasks live in their own module, added separately
    from medtorch.data.tasks import mitdb
except ModuleNotFoundError as exc:  # only when that module itself is absent
    if exc.name != "medtorch.data.tasks.mitdb":
        raise
    mitdb = None  # type: ignore[assignment]

__all__ = ["build_task", "images", "list_tasks", "mitdb", "register_task", "seizure", "svmlight"]
