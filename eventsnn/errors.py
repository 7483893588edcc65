"""The errors eventsnn raises on bad input, one class per kind of input.

Every class is a ``ValueError`` (so code written against earlier versions,
which caught ``ValueError`` or ``NetworkError``, keeps working) and carries a
message that names the file, layer or field at fault. The CLI turns any
:class:`EventsnnError` into one ``Error: ...`` line and a non-zero exit.

- :class:`NetworkError`: a network file or object that cannot be built;
- :class:`DataError`: a data set or input sample that cannot be read or used;
- :class:`SimulationError`: bad simulator options or a request the state
  cannot serve (no input loaded, spikes not recorded, unknown backend);
- :class:`ResultsError`: a results file that is missing, corrupt or foreign;
- :class:`OutputError`: an output path eventsnn will not or cannot write
  (a device, FIFO or symlink without ``force``, a missing or read-only
  directory, a name the file system refuses);
- :class:`ResourceError`: a network, run or file that would need more memory
  than the limit (``--max-memory``) allows.

``ConversionError`` (:mod:`eventsnn.ann`) and ``ProfileError``
(:mod:`eventsnn.energy`) derive from the same base.
"""

from __future__ import annotations


class EventsnnError(ValueError):
    """Base of every error eventsnn raises for bad input or a bad request."""


class NetworkError(EventsnnError):
    """A network that cannot be built or run; the message names where and why."""


class DataError(EventsnnError):
    """A data set, label file or input sample that cannot be read or used."""


class SimulationError(EventsnnError):
    """Bad simulator options, or a request the simulation state cannot serve."""


class ResultsError(EventsnnError):
    """A results file that is missing, unreadable, corrupt or not eventsnn's."""


class OutputError(EventsnnError):
    """An output path that is refused or cannot be written; checked before any work starts."""


class ResourceError(EventsnnError):
    """A request that would need more memory than the limit; the message names what is too big."""
