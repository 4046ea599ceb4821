"""The raw RTT samples beside anchors.json: one Parquet row per received probe.

Why a sidecar: at 1,000 hosts a run holds 20 million RTTs. Inline in anchors.json
(``probe.anchors/1``) they made it ~7 GiB to write and 37 s / 3.9 GiB to load for every calc,
groups and gate, though only calc's Monte-Carlo reads them, and only for the hops it places on.

Columns (README "anchors-samples.parquet"): ``src``, ``dst`` (strings: the direction probed),
``network`` (string, null: measured without a named network), ``seq`` (int32, the probe's
sequence number; null when converted from a ``probe.anchors/1`` file, which kept none) and
``rtt_ms`` (double). Rows are sorted by ``src`` then ``dst`` (a pair's rows in arrival order) in
row groups of at most ``ROW_GROUP_ROWS``, so the ``src`` statistics of each group let a reader
fetch one source's rows alone: at 1,000 hosts ~10 ms and ~150 MiB, against 3.9 s and 1.25 GiB
to read and index the whole file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from probe.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

#: The sidecar's name, beside anchors.json.
SIDECAR = "anchors-samples.parquet"
ROW_GROUP_ROWS = 1 << 16
COLUMNS = ("src", "dst", "network", "seq", "rtt_ms")


@dataclass(frozen=True, slots=True, eq=False)
class Probes:
    """The received probes of one ping train, in arrival order: RTTs (ms) and their sequence
    numbers (``None``: unknown, read from a ``probe.anchors/1`` file)."""

    rtt_ms: NDArray[np.float64]
    seq: NDArray[np.int32] | None = None


class ProbeColumns(Mapping[tuple[str, str], Probes]):
    """Received probes of many ordered pairs as columns, a pair's in arrival order: pair k
    (``src[k] → dst[k]``, codes into ``names``) has ``rtt_ms[start[k]:start[k] + count[k]]``
    and the same slice of ``seq`` (None: unknown, for every pair: a ``probe.anchors/1`` file kept
    none). A million pairs without a million objects:
    a pair's ``Probes`` are views, built when asked for; ``encode_samples`` writes the columns.
    """

    def __init__(
        self,
        names: Sequence[str],
        src: NDArray[np.int32],
        dst: NDArray[np.int32],
        start: NDArray[np.int64],
        count: NDArray[np.int64],
        rtt_ms: NDArray[np.float64],
        seq: NDArray[np.int32] | None,
    ) -> None:
        self.names, self.src, self.dst = tuple(names), src, dst
        self.start, self.count, self.rtt_ms, self.seq = start, count, rtt_ms, seq
        self._codes = {name: i for i, name in enumerate(self.names)}
        key = src.astype(np.int64) * len(self.names) + dst
        self._order = np.argsort(key, kind="stable")
        self._keys = key[self._order]

    @classmethod
    def of(cls, pairs: Mapping[tuple[str, str], Probes]) -> ProbeColumns:
        """The columns of ``pairs`` (one by one: a few, or a ``probe.anchors/1`` file's)."""
        keys = list(pairs)
        probes = [pairs[k] for k in keys]
        names = sorted({k[0] for k in keys} | {k[1] for k in keys})
        code = {name: i for i, name in enumerate(names)}
        count = np.fromiter((len(p.rtt_ms) for p in probes), np.int64, len(probes))
        known = all(p.seq is not None for p in probes)
        return cls(
            names,
            np.fromiter((code[k[0]] for k in keys), np.int32, len(keys)),
            np.fromiter((code[k[1]] for k in keys), np.int32, len(keys)),
            np.cumsum(count) - count,
            count,
            np.concatenate([np.zeros(0), *(p.rtt_ms for p in probes)]).astype(np.float64),
            np.concatenate([np.zeros(0, np.int32), *(p.seq for p in probes if p.seq is not None)])
            if known
            else None,
        )

    def rows(
        self, names: Sequence[str], src: NDArray[np.int32], dst: NDArray[np.int32]
    ) -> NDArray[np.intp]:
        """The pair index of each ``src[k] → dst[k]`` (codes into ``names``; -1: none kept)."""
        mine = np.asarray([*(self._codes.get(name, -1) for name in names), -1], np.int64)
        a, b = mine[src], mine[dst]
        key = a * len(self.names) + b
        at = np.searchsorted(self._keys, key, side="right") - 1
        found = (a >= 0) & (b >= 0) & (at >= 0)
        found[found] = self._keys[at[found]] == key[found]
        rows = np.full(len(key), -1, np.intp)
        rows[found] = self._order[at[found]]
        return rows

    def probes(self, k: int) -> Probes:
        a, b = int(self.start[k]), int(self.start[k] + self.count[k])
        return Probes(self.rtt_ms[a:b], None if self.seq is None else self.seq[a:b])

    def __getitem__(self, key: tuple[str, str]) -> Probes:
        (k,) = self.rows(key, np.zeros(1, np.int32), np.ones(1, np.int32)).tolist()
        if k < 0:
            raise KeyError(key)
        return self.probes(k)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((self.names[s], self.names[d]) for s, d in zip(self.src, self.dst, strict=True))

    def __len__(self) -> int:
        return len(self.src)


def encode_samples(
    probes: ProbeColumns, pairs: NDArray[np.intp], network: Sequence[str | None]
) -> bytes:
    """The Parquet bytes of the probes of ``pairs`` (indexes into ``probes``; ``network``: each
    one's), sorted by src then dst (stable: a pair keeps its order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src, dst = probes.src[pairs], probes.dst[pairs]
    used = np.unique(np.concatenate([src, dst]))
    names = sorted(probes.names[c] for c in used.tolist())
    position = {name: i for i, name in enumerate(names)}
    rank = np.full(len(probes.names), -1, np.int32)
    rank[used] = [position[probes.names[c]] for c in used.tolist()]
    src, dst = rank[src], rank[dst]
    order = np.lexsort((dst, src))
    pairs, src, dst = pairs[order], src[order], dst[order]
    networks = sorted({n for n in network if n is not None})
    net_code = {n: i for i, n in enumerate(networks)}
    net = np.fromiter((-1 if n is None else net_code[n] for n in network), np.int32, len(network))
    net = net[order]
    lengths = probes.count[pairs]
    total = int(lengths.sum())
    # every probe of the chosen pairs, pair after pair: its position in ``probes``' columns
    first = np.cumsum(lengths) - lengths
    at = np.arange(total, dtype=np.int64) + np.repeat(probes.start[pairs] - first, lengths)

    def column(per_pair: NDArray[Any]) -> NDArray[Any]:
        return np.repeat(per_pair, lengths)

    def strings(codes: NDArray[np.int32], values: list[str]) -> pa.Array:
        return pa.DictionaryArray.from_arrays(
            pa.array(codes, mask=codes < 0), pa.array(values, pa.string())
        )

    seq = probes.seq
    table = pa.table(
        {
            "src": strings(column(src), names),
            "dst": strings(column(dst), names),
            "network": strings(column(net), networks),
            "seq": pa.array(
                np.zeros(total, np.int32) if seq is None else seq[at].astype(np.int32),
                mask=np.full(total, seq is None),
            ),
            "rtt_ms": pa.array(probes.rtt_ms[at].astype(np.float64), pa.float64()),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=ROW_GROUP_ROWS, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


class SidecarSamples(Mapping[tuple[str, str], Probes]):
    """The samples of an anchors file's sidecar, read one source at a time on first use.

    Opening reads only the footer, and only when a sample is first asked for: groups and gate
    never pay for it. A missing, unreadable or inconsistent file is one ``InputError`` naming it.
    """

    def __init__(self, path: Path, rows: int) -> None:
        self.path, self.rows = path, rows
        self._file: Any = None
        self._groups: list[tuple[str, str] | None] = []
        self._by_src: dict[str, dict[str, Probes]] = {}

    def _error(self, message: str) -> InputError:
        return InputError(f"RTT samples sidecar: {message}", where=str(self.path))

    def _open(self) -> Any:
        if self._file is not None:
            return self._file
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.path.is_file():
            raise self._error("file not found (anchors.json points at it)")
        try:
            f = pq.ParquetFile(self.path)
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"not a Parquet file ({_first_line(exc)})") from None
        names = f.schema_arrow.names
        if missing := [c for c in COLUMNS if c not in names]:
            raise self._error(f"missing column {missing[0]!r} (has {', '.join(names)})")
        if f.metadata.num_rows != self.rows:
            raise self._error(f"{f.metadata.num_rows} rows, anchors.json says {self.rows}")
        src = names.index("src")
        for g in range(f.metadata.num_row_groups):
            stats = f.metadata.row_group(g).column(src).statistics
            ok = stats is not None and stats.has_min_max
            self._groups.append((str(stats.min), str(stats.max)) if ok else None)
        self._file = f
        return f

    def _read(self, groups: list[int], src: str | None) -> dict[str, dict[str, Probes]]:
        """The rows of ``groups`` (of source ``src`` only, unless None) by source and dst."""
        import pyarrow as pa

        f = self._open()
        try:
            table = f.read_row_groups(groups, columns=["src", "dst", "seq", "rtt_ms"])
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"unreadable ({_first_line(exc)})") from None
        src_codes, src_names = _codes(table["src"])
        keep = (
            np.ones(len(src_codes), np.bool_)
            if src is None
            else src_codes == (src_names.index(src) if src in src_names else -2)
        )
        dst_codes, dst_names = _codes(table["dst"])
        rtt = table["rtt_ms"].to_numpy(zero_copy_only=False)[keep].astype(np.float64)
        seq = table["seq"].to_numpy(zero_copy_only=False)[keep]
        if rtt.size and not (np.isfinite(rtt).all() and (rtt >= 0).all()):
            raise self._error("rtt_ms holds a null, negative or non-finite value")
        if (src_codes < 0).any() or (dst_codes < 0).any():
            raise self._error("src or dst holds a null")
        pair = src_codes[keep] * len(dst_names) + dst_codes[keep]
        order = np.argsort(pair, kind="stable")  # a pair's rows keep their file order
        keys, starts = np.unique(pair[order], return_index=True)
        ends = [*starts[1:].tolist(), len(order)] if len(keys) else []
        out: dict[str, dict[str, Probes]] = {}
        for key, a, b in zip(keys.tolist(), starts.tolist(), ends, strict=True):
            s, d = divmod(key, len(dst_names))
            idx = order[a:b]
            seqs = seq[idx]
            known = not np.isnan(np.asarray(seqs, np.float64)).any()
            probes = Probes(rtt[idx], seqs.astype(np.int32) if known else None)
            out.setdefault(src_names[s], {})[dst_names[d]] = probes
        return out

    def _source(self, src: str) -> dict[str, Probes]:
        if src not in self._by_src:
            self._open()
            groups = [g for g, r in enumerate(self._groups) if r is None or r[0] <= src <= r[1]]
            self._by_src[src] = self._read(groups, src).get(src, {}) if groups else {}
        return self._by_src[src]

    def _all(self) -> dict[str, dict[str, Probes]]:
        f = self._open()
        everything = self._read(list(range(f.metadata.num_row_groups)), None)
        self._by_src.update(everything)
        return everything

    def __getitem__(self, key: tuple[str, str]) -> Probes:
        return self._source(key[0])[key[1]]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((s, d) for s, by_dst in self._all().items() for d in by_dst)

    def __len__(self) -> int:
        return sum(len(by_dst) for by_dst in self._all().values())


def _codes(column: Any) -> tuple[NDArray[np.int64], list[str]]:
    """A string column as integer codes (-1: null) into its distinct values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column.cast(pa.string())).combine_chunks()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, [str(v) for v in encoded.dictionary.to_pylist()]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
