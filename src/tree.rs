//! Nesting flat rows (each naming its parent) into a tree, for the menu
//! and category trees: one pass to group, one to nest, levels kept in the
//! order the rows came in (so `ORDER BY sort_order, id` decides siblings).

use std::collections::HashMap;

/// Nests `rows` under their parents. `key` gives a row's id and parent id
/// (`None` for a root); `node` builds a node from a row and its children.
/// A row whose parent is not among `rows` is left out, with its subtree.
pub fn nest<R, N>(
    rows: Vec<R>,
    key: impl Fn(&R) -> (i64, Option<i64>),
    node: impl Fn(R, Vec<N>) -> N,
) -> Vec<N> {
    let mut by_parent: HashMap<Option<i64>, Vec<R>> = HashMap::new();
    for row in rows {
        by_parent.entry(key(&row).1).or_default().push(row);
    }
    level(&mut by_parent, None, &key, &node)
}

fn level<R, N>(
    by_parent: &mut HashMap<Option<i64>, Vec<R>>,
    parent: Option<i64>,
    key: &impl Fn(&R) -> (i64, Option<i64>),
    node: &impl Fn(R, Vec<N>) -> N,
) -> Vec<N> {
    let rows = by_parent.remove(&parent).unwrap_or_default();
    rows.into_iter()
        .map(|row| {
            let children = level(by_parent, Some(key(&row).0), key, node);
            node(row, children)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::nest;

    #[derive(Debug, PartialEq)]
    struct Node(i64, Vec<Node>);

    #[test]
    fn nests_in_the_given_order_and_drops_orphans() {
        let rows = vec![(3, Some(1)), (1, None), (2, Some(1)), (4, None), (5, Some(9)), (6, Some(5))];
        let tree = nest(rows, |&(id, parent)| (id, parent), |(id, _), children| Node(id, children));
        assert_eq!(tree, vec![Node(1, vec![Node(3, vec![]), Node(2, vec![])]), Node(4, vec![])]);
    }
}
