# seed 0: the tests run in the order written (they share one node, and the
# last one closes it)
{:ok, _} = Application.ensure_all_started(:inets)
ExUnit.start(seed: 0, timeout: 180_000)
