package main

import (
	"context"
	"fmt"
	"time"

	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/store"
)

// runBackup copies the server database while the server runs.
func runBackup(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("backup", e)
	to := fs.String("to", "", "fichier de la sauvegarde (il ne doit pas exister)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *to == "" {
		return usagef("--to est obligatoire : le fichier où écrire la sauvegarde")
	}
	if err := notPostgres(*data); err != nil {
		return err
	}
	if err := needServerDB(*data.data); err != nil {
		return err
	}
	info, err := server.Backup(ctx, *data.data, *to)
	if err != nil {
		return fmt.Errorf("sauvegarde impossible : %w", err)
	}
	fmt.Fprintf(e.stdout, "Sauvegarde écrite : %s (%d octets, vérifiée : integrity_check ok)\nHistorique : %s, séquence %d\n",
		info.Path, info.Bytes, info.History, info.Seq)
	return nil
}

// runRestore puts a backup back, while no server runs on the directory.
func runRestore(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("restore", e)
	from := fs.String("from", "", "fichier de sauvegarde à restaurer")
	if err := fs.parse(args); err != nil {
		return err
	}
	pg, err := data.postgres()
	if err != nil {
		return err
	}
	if pg && *from == "" {
		return markRestored(ctx, *data, e)
	}
	if *from == "" {
		return usagef("--from est obligatoire : le fichier de sauvegarde à restaurer")
	}
	if err := notPostgres(*data); err != nil {
		return err
	}
	info, err := server.Restore(ctx, *from, *data.data, time.Now())
	if err != nil {
		return fmt.Errorf("restauration impossible : %w", err)
	}
	fmt.Fprintf(e.stdout, "Sauvegarde restaurée : %s (séquence %d)\n", info.Backup.Path, info.Backup.Seq)
	if info.SetAside != "" {
		fmt.Fprintf(e.stdout, "L'ancienne base est conservée : %s\n", info.SetAside)
	}
	fmt.Fprintf(e.stdout, "Nouvel historique : %s. Les appareils renverront leurs propres modifications et retéléchargeront tout à leur prochaine synchronisation.\n", info.History)
	return nil
}

// notPostgres refuses backup and restore on PostgreSQL, whose own tools
// do it better (a consistent pg_dump while servers run, or continuous
// archiving): README.md, "Several servers on PostgreSQL".
func notPostgres(data place) error {
	pg, err := data.postgres()
	if err != nil || !pg {
		return err
	}
	return fmt.Errorf("avec une base PostgreSQL (--store), sauvegardez et restaurez avec les outils de PostgreSQL (pg_dump, pg_restore, pg_basebackup), puis, avant de redémarrer les serveurs, « relais restore --store ADRESSE » sans --from : voir README.md")
}

// markRestored gives a PostgreSQL store put back with PostgreSQL's tools
// a new history identity (server.MarkRestored), every server stopped.
func markRestored(ctx context.Context, data place, e *env) error {
	return withDB(ctx, data, func(db *store.DB) error {
		info, err := server.MarkRestored(ctx, db, time.Now())
		if err != nil {
			return fmt.Errorf("restauration impossible : %w", err)
		}
		fmt.Fprintf(e.stdout, "Base restaurée (séquence %d, historique %s).\n", info.Backup.Seq, info.Backup.History)
		fmt.Fprintf(e.stdout, "Nouvel historique : %s. Les appareils renverront leurs propres modifications et retéléchargeront ce qui a changé depuis la sauvegarde à leur prochaine synchronisation.\n", info.History)
		return nil
	})
}
