//! What the embedded store's file holds, table by table: rows, the bytes of
//! their keys and values, and the pages their trees take (redb's own
//! counts). `portcullis store-stats` prints it; it tells an operator where
//! an account's bytes go.

use redb::{ReadableTableMetadata, TableHandle};

use super::EmbeddedStore;
use crate::store::{StoreResult, unavailable};

/// One table's share of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    pub name: String,
    pub rows: u64,
    /// Bytes of keys and values.
    pub stored_bytes: u64,
    /// Bytes of the pages the table's tree takes: stored bytes, the pages'
    /// own bookkeeping, and the room left free in them.
    pub page_bytes: u64,
    /// Levels of the table's tree (0 for an empty table).
    pub height: u32,
}

/// The whole file: its tables, and the pages allocated in all.
#[derive(Debug, Clone)]
pub struct StoreStats {
    pub tables: Vec<TableStats>,
    pub allocated_bytes: u64,
    pub file_bytes: u64,
}

impl EmbeddedStore {
    /// Table by table, biggest first, from one read transaction.
    pub fn stats(&self) -> StoreResult<StoreStats> {
        let mut tables = self.read(|txn| {
            let mut tables = Vec::new();
            for handle in txn.list_tables().map_err(unavailable)? {
                let table = txn.open_untyped_table(handle.clone()).map_err(unavailable)?;
                let stats = table.stats().map_err(unavailable)?;
                tables.push(TableStats {
                    name: handle.name().to_owned(),
                    rows: table.len().map_err(unavailable)?,
                    stored_bytes: stats.stored_bytes(),
                    page_bytes: stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes(),
                    height: stats.tree_height(),
                });
            }
            Ok(tables)
        })?;
        tables.sort_by(|a, b| b.page_bytes.cmp(&a.page_bytes).then_with(|| a.name.cmp(&b.name)));
        let (allocated_bytes, file_bytes) = self.db.file_usage()?;
        Ok(StoreStats { tables, allocated_bytes, file_bytes })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;
    use crate::store::contract::user;

    use super::super::EmbeddedStore;

    #[actix_web::test]
    async fn counts_the_rows_and_bytes_of_each_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let empty = store.stats().unwrap();
        let users = |stats: &super::StoreStats| stats.tables.iter().find(|t| t.name == "users").cloned().unwrap();
        assert_eq!(users(&empty).rows, 0);
        for i in 0..50 {
            store.create_user(user(&format!("u{i}@example.com"), None)).await.unwrap();
        }
        let full = store.stats().unwrap();
        let table = users(&full);
        assert_eq!(table.rows, 50);
        assert!(table.stored_bytes > 50 * 100, "{table:?}");
        assert!(table.page_bytes >= table.stored_bytes && table.height >= 1, "{table:?}");
        let by_email = full.tables.iter().find(|t| t.name == "users_by_email").unwrap();
        assert_eq!(by_email.rows, 50);
        assert!(full.allocated_bytes >= full.tables.iter().map(|t| t.page_bytes).sum::<u64>(), "{full:?}");
        assert!(full.file_bytes >= full.allocated_bytes, "{full:?}");
        assert!(full.tables.windows(2).all(|w| w[0].page_bytes >= w[1].page_bytes), "biggest first");
    }
}
