# Runs the tests in this folder under any interpreter, MicroPython included
# (pytest is CPython-only). tests/test_under_micropython.py drives it.
#   runner.py test_core_flow.py            -> prints the test names
#   runner.py test_core_flow.py test_x     -> runs one; exit 1 and a traceback on failure
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE)


def main():
    module_name = sys.argv[1].rsplit("/", 1)[-1].replace(".py", "")
    module = __import__(module_name)
    names = [n for n in dir(module) if n.startswith("test_")]
    if len(sys.argv) == 2:
        for name in sorted(names):
            print(name)
        return 0
    name = sys.argv[2]
    try:
        getattr(module, name)()
    except Exception as e:
        try:
            sys.print_exception(e)
        except AttributeError:
            import traceback
            traceback.print_exc()
        return 1
    print("PASS", name)
    return 0


sys.exit(main())
