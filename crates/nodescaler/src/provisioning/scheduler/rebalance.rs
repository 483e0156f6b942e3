//! Swaps between a plan's claims that idle opposite resources.
//!
//! Packing pods in order of their dominant share fills some claims with CPU-heavy pods (memory
//! left idle) and others with memory-heavy ones (CPU idle); moving single pods cannot mend
//! that, since neither claim has room for the other's pods. Exchanging a CPU-heavy pod of the
//! first for a memory-heavy pod of the second, each within the other's current room, evens
//! both out without raising a price; once a claim's binding resource has shrunk enough it is
//! re-priced on a smaller type. The scheduling benchmark at 20,000 pods had claims of 253 CPU
//! holding 256 GiB of 508 beside claims of 400 CPU holding 267 CPU.

use std::collections::BTreeMap;

use super::{CPU, MEMORY, Masks, Scheduler, fits};

/// Most swaps per pair of claims.
const SWAPS_PER_PAIR: usize = 512;

/// Memory-heavy pods a CPU-heavy pod is tried against before it is given up.
const TRIES_PER_POD: usize = 256;

/// Parts per million: idle shares are compared in it.
const PPM: i128 = 1_000_000;

impl Scheduler<'_> {
    /// One round: the claims of each pool and set of domains are split into those that idle
    /// memory and those that idle CPU, most lopsided first, and paired in that order; each pair
    /// swaps pods while that evens both out. True when a pod moved. The plan's cost never
    /// rises: every swap keeps both claims within the room of their cheapest option, and only
    /// re-pricing (to a cheaper type) follows.
    pub(super) fn rebalance(&mut self) -> bool {
        // (pool, masks) → (claims idling memory, claims idling CPU), each with its lopsidedness.
        type Sides = (Vec<(i128, usize)>, Vec<(i128, usize)>);
        let mut buckets: BTreeMap<(usize, Masks), Sides> = BTreeMap::new();
        for c in self.fixed..self.targets.len() {
            let t = &self.targets[c];
            let Some(room) = self.first_room(c) else {
                continue;
            };
            let idle =
                |r: usize| i128::from(room[r] - t.used[r]) * PPM / i128::from(room[r].max(1));
            let (cpu_idle, mem_idle) = (idle(CPU), idle(MEMORY));
            let sides = buckets.entry((t.pool, t.masks)).or_default();
            // Weighted by size: a big lopsided claim has the most to give back.
            let weight = i128::from(room[CPU].max(1));
            if mem_idle > cpu_idle {
                sides.0.push(((mem_idle - cpu_idle) * weight, c));
            } else if cpu_idle > mem_idle {
                sides.1.push(((cpu_idle - mem_idle) * weight, c));
            }
        }
        let mut moved = false;
        for (_, (mut memory_idle, mut cpu_idle)) in buckets {
            memory_idle.sort_by(|a, b| b.cmp(a));
            cpu_idle.sort_by(|a, b| b.cmp(a));
            for ((_, cpu_heavy), (_, mem_heavy)) in memory_idle.into_iter().zip(cpu_idle) {
                if self.swap_pair(mem_heavy, cpu_heavy) {
                    moved = true;
                    self.reprice(mem_heavy);
                    self.reprice(cpu_heavy);
                }
            }
        }
        moved
    }

    /// The room of claim `c`'s cheapest option.
    fn first_room(&self, c: usize) -> Option<Vec<i64>> {
        let t = &self.targets[c];
        let first = *t.options.first()? as usize;
        Some(self.pools[t.pool].types[first].room.clone())
    }

    /// Whether pod `p` may leave claim `from` for claim `to` while pod `q` leaves `to` for
    /// `from`, with both claims' domains as they are.
    fn may_swap(&self, p: usize, from: usize, q: usize, to: usize) -> bool {
        self.move_masks(p, from, to, Some(q)) == Some(self.targets[to].masks)
            && self.move_masks(q, to, from, Some(p)) == Some(self.targets[from].masks)
    }

    /// Swaps CPU-heavy pods of `cpu_heavy` (which idles memory) for memory-heavy pods of
    /// `mem_heavy` (which idles CPU) while each swap fits both claims' rooms and evens them.
    fn swap_pair(&mut self, mem_heavy: usize, cpu_heavy: usize) -> bool {
        let (Some(room_a), Some(room_b)) = (self.first_room(mem_heavy), self.first_room(cpu_heavy))
        else {
            return false;
        };
        // How CPU-heavy a pod is, as shares of the memory-heavy claim's room.
        let lean = |req: &[i64]| {
            i128::from(req[CPU]) * PPM / i128::from(room_a[CPU].max(1))
                - i128::from(req[MEMORY]) * PPM / i128::from(room_a[MEMORY].max(1))
        };
        let candidates = |s: &Self, from: usize, to: usize| -> Vec<(i128, usize)> {
            s.targets[from]
                .pods
                .iter()
                .map(|p| *p as usize)
                .filter(|p| s.movable(*p) && s.runs_on_first_option(*p, to))
                .map(|p| (lean(&s.pods[p].req), p))
                .collect()
        };
        let mut xs = candidates(self, cpu_heavy, mem_heavy);
        let mut ys = candidates(self, mem_heavy, cpu_heavy);
        xs.sort_by(|a, b| b.cmp(a));
        ys.sort();
        let zero = vec![0i64; room_a.len()];
        let mut taken = vec![false; ys.len()];
        let mut first_free = 0;
        let mut swaps = 0;
        for &(lx, x) in &xs {
            if swaps >= SWAPS_PER_PAIR
                // The claims are even: a swap more would tip them.
                || !idles(&self.targets[mem_heavy].used, &room_a, CPU)
                || !idles(&self.targets[cpu_heavy].used, &room_b, MEMORY)
            {
                break;
            }
            while first_free < ys.len() && taken[first_free] {
                first_free += 1;
            }
            let mut tried = 0;
            for k in first_free..ys.len() {
                let (ly, y) = ys[k];
                if lx <= ly || tried >= TRIES_PER_POD {
                    break;
                }
                if taken[k] {
                    continue;
                }
                tried += 1;
                let mut new_a = self.targets[mem_heavy].used.clone();
                let mut new_b = self.targets[cpu_heavy].used.clone();
                for (n, (r_x, r_y)) in self.pods[x].req.iter().zip(&self.pods[y].req).enumerate() {
                    new_a[n] += r_x - r_y;
                    new_b[n] += r_y - r_x;
                }
                // Hostname counts move with every swap: the domains are checked per swap.
                if !fits(&new_a, &zero, &room_a)
                    || !fits(&new_b, &zero, &room_b)
                    || !self.may_swap(x, cpu_heavy, y, mem_heavy)
                {
                    continue;
                }
                self.detach(x, cpu_heavy);
                self.detach(y, mem_heavy);
                self.attach(x, mem_heavy);
                self.attach(y, cpu_heavy);
                taken[k] = true;
                swaps += 1;
                break;
            }
        }
        swaps > 0
    }
}

/// True when `used` leaves a larger share of `room` idle in resource `r` than in the other of
/// CPU and memory.
fn idles(used: &[i64], room: &[i64], r: usize) -> bool {
    let share = |k: usize| i128::from(room[k] - used[k]) * PPM / i128::from(room[k].max(1));
    let other = if r == CPU { MEMORY } else { CPU };
    share(r) > share(other)
}
