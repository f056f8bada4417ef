"""Test-only code that is not part of the binexp package: callbacks that kill or inspect a real
``binexp train`` process (:mod:`tests.support.killpoint`, :mod:`tests.support.rank_state`) and the
launcher that adds them to it (:mod:`tests.support.launch`); no config can name them."""
