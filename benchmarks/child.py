"""Child process entry: `python child.py module:function '<json kwargs>' <result.json>`.

Imports the function, calls it with the keyword arguments, writes the dict it returns as JSON. The
function does its own setup and wraps only the measured part in `bench.measure.step`.
"""

import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    target, raw_kwargs, result_path = sys.argv[1:4]
    module_name, _, func_name = target.partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    result = func(**json.loads(raw_kwargs))
    Path(result_path).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
