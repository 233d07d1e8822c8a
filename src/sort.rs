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

/// Sorts `items` stably by a key of at most 96 bits, when every element has one and there
/// are fewer than 2^32 elements: each key gets its element's index in the low 32 bits, so the
/// keys are distinct and the one order any sort can give is the stable order. One heapsort
/// of `u128`s instead of a `dyn` comparison per step; keys already in order move
/// nothing. Returns false, with `items` untouched, when some key is missing or too wide (the
/// caller sorts with [`sort_by`]).
pub fn sort_by_packed<T>(items: &mut [T], key: &dyn Fn(&T) -> Option<u128>) -> bool {
    if items.len() < 2 {
        return true;
    }
    let mut keys: Vec<u128> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match (key(item), u32::try_from(i)) {
            (Some(k), Ok(i)) if k >> 96 == 0 => keys.push(k << 32 | u128::from(i)),
            _ => return false,
        }
    }
    if keys.windows(2).all(|w| w.first() < w.get(1)) {
        return true;
    }
    heapsort(&mut keys);
    // The low 32 bits are the index the element came from.
    let mut order: Vec<usize> = keys.iter().map(|&k| k as u32 as usize).collect();
    permute(items, &mut order);
    true
}

/// Sorts `keys` in place, O(n log n) whatever the input: a few hundred bytes of wasm where
/// the standard `sort_unstable` of `u128` is several KB (the module's size limit).
fn heapsort(keys: &mut [u128]) {
    let n = keys.len();
    for i in (0..n / 2).rev() {
        sift_down(keys, i, n);
    }
    for end in (1..n).rev() {
        keys.swap(0, end);
        sift_down(keys, 0, end);
    }
}

/// Moves `keys[root]` down the max-heap `keys[..end]` to its place.
fn sift_down(keys: &mut [u128], mut root: usize, end: usize) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            break;
        }
        if child + 1 < end && keys.get(child) < keys.get(child + 1) {
            child += 1;
        }
        if keys.get(root) >= keys.get(child) {
            break;
        }
        keys.swap(root, child);
        root = child;
    }
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

    /// The packed sort gives the standard stable sort's order (ties keep their order), on
    /// random keys with many ties, presorted, reversed and two interleaved sorted runs; a key
    /// too wide or missing leaves the slice as it was and says so.
    #[test]
    fn packed_sorts_as_the_standard_stable_sort_does() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || crate::test_rng::xorshift64(&mut seed);
        let key = |x: &(u64, u64, usize)| Some(u128::from(x.0) << 48 | u128::from(x.1));
        // Sorted as the standard stable sort by the first two fields sorts it.
        let check = |mut v: Vec<(u64, u64, usize)>, what: &str| {
            let mut expected = v.clone();
            expected.sort_by_key(|x| (x.0, x.1));
            assert!(sort_by_packed(&mut v, &key));
            assert_eq!(v, expected, "{what}");
        };
        for len in [0, 1, 2, 3, 7, 8, 31, 100, 1000, 3000] {
            for modulo in [1, 2, 3, 50, 1 << 40] {
                let v = (0..len).map(|i| (next() % modulo, next() % 3, i)).collect();
                check(v, &format!("len {len} modulo {modulo}"));
            }
            // Interleaved sorted runs, as hits of rules and detector families come.
            for k in [2, 3, 5, 8, 9, 40] {
                let runs = (0..len)
                    .map(|i| ((i % (len / k + 1)) as u64, next() % 2, i))
                    .collect();
                check(runs, &format!("len {len} runs {k}"));
            }
            // Two sorted runs, as hits of two rules come; presorted; reversed.
            let runs = (0..len)
                .map(|i| ((i % (len / 2 + 1)) as u64, 0, i))
                .collect();
            check(runs, &format!("len {len} two runs"));
            let mut rev: Vec<(u64, u64, usize)> =
                (0..len).rev().map(|i| (i as u64, 0, i)).collect();
            assert!(sort_by_packed(&mut rev, &key));
            assert!(rev.windows(2).all(|w| w[0].0 < w[1].0));
        }
        let mut wide = vec![(1u64 << 50, 0u64, 0usize), (0, 0, 1)];
        let before = wide.clone();
        assert!(!sort_by_packed(&mut wide, &key));
        assert_eq!(wide, before);
        assert!(!sort_by_packed(&mut wide, &|_| None));
        assert_eq!(wide, before);
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
