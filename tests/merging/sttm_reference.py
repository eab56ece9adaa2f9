"""A deliberately simple, loop-based reference of STTM merging, written from the spec (docs §3-4).

Per frame it builds the pooled pyramid cell by cell, searches the quadtree recursively, then links
nested nodes of consecutive frames pair by pair and groups them with the authors' union-find rounds
(``union_find="authors"``) or a textbook union-find (``"components"``). All arithmetic is
float64; with ``merge_dtype="input"`` every pooled cell of a bfloat16/float16 video is rounded to
that dtype, as the authors' pooling in the input dtype does. It is slow and only meant for small
inputs in tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

EPS = 1e-8


def ref_level_sizes(h: int, w: int) -> list[tuple[int, int]]:
    sizes = [(h, w)]
    while h != 2 and w != 2 and (h, w) != (1, 1):
        h = h // 2 + h % 2
        w = w // 2 + w % 2
        sizes = [(h, w)] + sizes
    return sizes


def pooling_groups(n: int) -> list[list[int]]:
    """How the n indices of a finer axis pool into a coarser one: odd -> first alone, then pairs."""
    if n % 2 == 1:
        return [[0]] + [[k, k + 1] for k in range(1, n, 2)]
    return [[k, k + 1] for k in range(0, n, 2)]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    na = max(float(a.norm()), EPS)
    nb = max(float(b.norm()), EPS)
    return min(1.0, max(-1.0, float(a @ b) / (na * nb)))


@dataclass
class Cell:
    feature: torch.Tensor  # [C] float64
    rows: list[int]  # leaf rows covered
    cols: list[int]  # leaf cols covered
    children: list[tuple[int, int]]  # cells of the next finer level


@dataclass
class Node:
    t: int
    y0: int
    x0: int
    y1: int
    x1: int
    feature: torch.Tensor

    def contains(self, other: Node) -> bool:
        return self.y0 <= other.y0 and self.x0 <= other.x0 and self.y1 >= other.y1 and self.x1 >= other.x1

    @property
    def area(self) -> int:
        return (self.y1 - self.y0) * (self.x1 - self.x0)


def frame_pyramid(
    frame: torch.Tensor, sizes: list[tuple[int, int]], round_to: torch.dtype | None = None
) -> list[dict[tuple[int, int], Cell]]:
    """Cells of every working level (root first) of one frame ``[H, W, C]`` (float64).

    ``round_to``: each pooled cell's mean is rounded to that dtype (and kept as float64).
    """
    h, w, _ = frame.shape
    finest = {(y, x): Cell(frame[y, x], [y], [x], []) for y in range(h) for x in range(w)}
    levels = [finest]
    for lvl in range(len(sizes) - 2, -1, -1):
        finer = levels[0]
        fh, fw = sizes[lvl + 1]
        coarse = {}
        for i, rgroup in enumerate(pooling_groups(fh)):
            for j, cgroup in enumerate(pooling_groups(fw)):
                kids = [(r, c) for r in rgroup for c in cgroup]
                feature = torch.stack([finer[k].feature for k in kids]).mean(0)
                if round_to is not None:
                    feature = feature.to(round_to).double()
                rows = sorted({y for k in kids for y in finer[k].rows})
                cols = sorted({x for k in kids for x in finer[k].cols})
                coarse[(i, j)] = Cell(feature, rows, cols, kids)
        levels.insert(0, coarse)
    return levels


def frame_nodes(t: int, levels, tau_s: float, mask_unused: bool) -> list[Node]:
    out: list[Node] = []

    def emit(cell: Cell) -> None:
        out.append(Node(t, cell.rows[0], cell.cols[0], cell.rows[-1] + 1, cell.cols[-1] + 1, cell.feature))

    def visit(lvl: int, key: tuple[int, int]) -> None:
        cell = levels[lvl][key]
        if lvl == len(levels) - 1:
            emit(cell)
            return
        sims = [cosine(cell.feature, levels[lvl + 1][k].feature) for k in cell.children]
        if not mask_unused:  # unused slots default to the frame's top-left child cell
            sims += [cosine(cell.feature, levels[lvl + 1][(0, 0)].feature)] * (4 - len(cell.children))
        if all(s >= tau_s for s in sims):
            emit(cell)
        else:
            for k in cell.children:
                visit(lvl + 1, k)

    for key in sorted(levels[0]):
        visit(0, key)
    return out


def union_find_exact(n: int, edges: list[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(i) for i in range(n)]


def union_find_authors(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """The authors' rounds (min to both endpoints, one pointer jump), stopped once labels are idempotent."""
    label = list(range(n))
    if not edges:
        return label
    while True:
        new = label[:]
        for a, b in edges:
            low = min(label[a], label[b])
            new[a] = min(new[a], low)
            new[b] = min(new[b], low)
        new = [new[new[i]] for i in range(n)]
        label = new
        if all(label[label[i]] == label[i] for i in range(n)):
            return label


@dataclass
class RefResult:
    features: torch.Tensor
    num_patches: torch.Tensor
    tlbr: torch.Tensor
    token_map: torch.Tensor
    rep_index: torch.Tensor


def reference_merge(
    x: torch.Tensor,
    tau_s: float,
    tau_t: float,
    root_level: int = 1,
    mask_unused_slots: bool = False,
    best_partner: bool = False,
    weighted: bool = False,
    union_find: str = "authors",
    merge_dtype: str = "input",
) -> RefResult:
    T, H, W, C = x.shape
    sizes = ref_level_sizes(H, W)[root_level:]
    xd = x.double()
    low = merge_dtype == "input" and x.dtype in (torch.bfloat16, torch.float16)
    round_to = x.dtype if low else None
    nodes: list[Node] = []
    for t in range(T):
        nodes += frame_nodes(t, frame_pyramid(xd[t], sizes, round_to), tau_s, mask_unused_slots)
    nodes.sort(key=lambda n: n.t * H * W + n.y0 * W + n.x0)

    edges: list[tuple[int, int]] = []
    if tau_t > 0:
        by_frame = [[i for i, n in enumerate(nodes) if n.t == t] for t in range(T)]
        for t in range(T - 1):
            best: dict[int, tuple[float, int]] = {}
            for ia in by_frame[t]:
                for ib in by_frame[t + 1]:
                    a, b = nodes[ia], nodes[ib]
                    if not (a.contains(b) or b.contains(a)):
                        continue
                    s = cosine(a.feature, b.feature)
                    if s < tau_t:
                        continue
                    if not best_partner:
                        edges.append((ia, ib))
                    elif ib not in best or s > best[ib][0]:  # ia ascends: ties keep the smaller
                        best[ib] = (s, ia)
            edges += [(ia, ib) for ib, (_, ia) in best.items()]
    uf = {"authors": union_find_authors, "components": union_find_exact}[union_find]
    rep = uf(len(nodes), edges)

    kept = sorted(set(rep))
    slot = {r: k for k, r in enumerate(kept)}
    features, patches, tlbr, rep_index = [], [], [], []
    token_map = torch.empty(T * H * W, dtype=torch.int64)
    for r in kept:
        members = [nodes[i] for i in range(len(nodes)) if rep[i] == r]
        area = sum(m.area for m in members)
        if weighted:
            feat = sum(m.feature * m.area for m in members) / area
        else:
            feat = sum(m.feature for m in members) / len(members)
        head = nodes[r]
        features.append(feat)
        patches.append(area)
        tlbr.append([head.t, head.y0, head.x0, head.y1, head.x1])
        rep_index.append(head.t * H * W + head.y0 * W + head.x0)
        for m in members:
            for y in range(m.y0, m.y1):
                for xx in range(m.x0, m.x1):
                    token_map[m.t * H * W + y * W + xx] = slot[r]
    return RefResult(
        features=torch.stack(features),
        num_patches=torch.tensor(patches, dtype=torch.int64),
        tlbr=torch.tensor(tlbr, dtype=torch.int64),
        token_map=token_map,
        rep_index=torch.tensor(rep_index, dtype=torch.int64),
    )
