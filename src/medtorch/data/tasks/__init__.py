"""Tasks: source files -> ArrayDataset, each with its declaration (see ``registry``).

Every module of this package is found and imported by the registry on first use, so a new
task is one new file here and nothing else to edit.
"""

from medtorch.data.tasks.registry import Task, build_task, get_task, list_tasks, register_task

__all__ = ["Task", "build_task", "get_task", "list_tasks", "register_task"]
