//! One stable sort for every element type: the standard library's stable sort is
//! monomorphised per element type and comparator (4–16 KB of wasm each; the module had eleven
//! copies, ~75 KB): every sort of ours comes here, and `sort_unstable` too (a stable order is
//! one of the orders an unstable sort may give); maps are filled by `insert`, not `collect`,
//! which sorts first. Only a sort of indices under a `dyn` comparator is compiled, once; each
//! element type adds a small permutation loop. Still stable, still O(n log n), and still fast
//! on presorted runs (the index sort is the standard one).

use std::cmp::Ordering;

/// Sorts `items` by `cmp`, stably (equal elements keep their order).
pub fn sort_by<T>(items: &mut [T], cmp: &dyn Fn(&T, &T) -> Ordering) {
    if items.len() < 2 {
        return;
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    {
        let view: &[T] = items;
        sort_indices(&mut order, &|a, b| match (view.get(a), view.get(b)) {
            (Some(x), Some(y)) => cmp(x, y),
            _ => Ordering::Equal,
        });
    }
    permute(items, &mut order);
}

/// The one instantiation of the standard stable sort.
fn sort_indices(order: &mut [usize], cmp: &dyn Fn(usize, usize) -> Ordering) {
    order.sort_by(|&a, &b| cmp(a, b));
}

/// Moves `items[order[i]]` to position `i`, one cycle of the permutation at a time (O(n)
/// swaps); `order` is used up as the marks of visited positions.
fn permute<T>(items: &mut [T], order: &mut [usize]) {
    let n = items.len();
    for start in 0..n {
        let mut cur = start;
        while let Some(slot) = order.get_mut(cur) {
            let next = std::mem::replace(slot, usize::MAX);
            if next == start || next >= n {
                break;
            }
            items.swap(cur, next);
            cur = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Against the standard stable sort, on keys with many ties (stability shows), presorted
    /// and reversed runs and every permutation of a small slice.
    #[test]
    fn sorts_as_the_standard_stable_sort_does() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || crate::test_rng::xorshift64(&mut seed);
        let by_key = |a: &(u64, usize), b: &(u64, usize)| a.0.cmp(&b.0);
        for len in [0, 1, 2, 3, 7, 8, 31, 100, 1000] {
            for modulo in [1, 3, 1000] {
                let mut v: Vec<(u64, usize)> = (0..len).map(|i| (next() % modulo, i)).collect();
                let mut expected = v.clone();
                expected.sort_by(by_key);
                sort_by(&mut v, &by_key);
                assert_eq!(v, expected, "len {len} modulo {modulo}");
            }
            let mut runs: Vec<(u64, usize)> = (0..len).map(|i| ((i % 10) as u64, i)).collect();
            let mut expected = runs.clone();
            expected.sort_by(by_key);
            sort_by(&mut runs, &by_key);
            assert_eq!(runs, expected);
            let mut rev: Vec<(u64, usize)> = (0..len).rev().map(|i| (i as u64, i)).collect();
            sort_by(&mut rev, &by_key);
            assert!(rev.windows(2).all(|w| w[0].0 <= w[1].0));
        }
        // Every permutation of 5 elements.
        let mut perm = [0usize, 1, 2, 3, 4];
        let mut all = Vec::new();
        heap_permutations(&mut perm, 5, &mut all);
        assert_eq!(all.len(), 120);
        for p in all {
            let mut v = p.clone();
            sort_by(&mut v, &|a: &usize, b: &usize| a.cmp(b));
            assert_eq!(v, vec![0, 1, 2, 3, 4], "{p:?}");
        }
    }

    fn heap_permutations(a: &mut [usize; 5], k: usize, out: &mut Vec<Vec<usize>>) {
        if k == 1 {
            out.push(a.to_vec());
            return;
        }
        for i in 0..k {
            heap_permutations(a, k - 1, out);
            a.swap(if k % 2 == 0 { i } else { 0 }, k - 1);
        }
    }
}
