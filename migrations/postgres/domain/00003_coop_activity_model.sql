-- +goose Up
-- PostgreSQL twin of migrations/domain/00003_coop_activity_model.sql: the same tables and columns,
-- in PostgreSQL's types (SQLite's INTEGER as BIGINT, REAL as DOUBLE PRECISION).
-- The rest of La Coop de la médiation numérique's activity model (see
-- package domain for the enum values, labels and rules). Stored values
-- are the Coop's enum values, so data can flow there later.
--
-- As in 00001, every column but id is nullable and there are no foreign
-- keys or CHECK constraints: cells of a row arrive separately, and the
-- rules are checked at write time by triggers generated from package
-- domain (devices) and after each pushed batch (server).
--
-- Multi-valued enums (thematiques, materiel) are ONE cell holding a JSON
-- array of values, e.g. '["email","navigation_sur_internet"]': changing
-- the list is one last-writer-wins write, never a merge of two lists.

-- A structure's kind as people say it (France Services, médiathèque,
-- centre social...): free text, for pages and the demo.
ALTER TABLE structure ADD COLUMN typologie TEXT;

ALTER TABLE beneficiaire ADD COLUMN pas_de_telephone BIGINT;
-- Set on a duplicate merged into another beneficiary: the id it went to.
ALTER TABLE beneficiaire ADD COLUMN fusion_vers_id TEXT;

ALTER TABLE activite ADD COLUMN code_postal TEXT;
ALTER TABLE activite ADD COLUMN materiel TEXT;
ALTER TABLE activite ADD COLUMN thematiques TEXT;
ALTER TABLE activite ADD COLUMN oriente_vers_structure BIGINT;
ALTER TABLE activite ADD COLUMN structure_de_redirection TEXT;
ALTER TABLE activite ADD COLUMN precisions_demarche TEXT;
ALTER TABLE activite ADD COLUMN titre_atelier TEXT;
ALTER TABLE activite ADD COLUMN niveau TEXT;
ALTER TABLE activite ADD COLUMN rendez_vous_id TEXT;

-- Activity <-> beneficiary. mediateur_id repeats the activity's owner so
-- that scoping reads one column on every owned table.
CREATE TABLE accompagnement (
    id                     TEXT PRIMARY KEY NOT NULL,
    mediateur_id           TEXT,
    activite_id            TEXT,
    beneficiaire_id        TEXT,
    premier_accompagnement BIGINT
);
CREATE INDEX accompagnement_activite ON accompagnement (activite_id);
CREATE INDEX accompagnement_beneficiaire ON accompagnement (beneficiaire_id);

-- Participants of a collective workshop who were not recorded by name:
-- counts only, by genre, age bracket and social status (one row per
-- workshop).
CREATE TABLE participants_anonymes (
    id                                  TEXT PRIMARY KEY NOT NULL,
    mediateur_id                        TEXT,
    activite_id                         TEXT,
    total                               BIGINT,
    deja_accompagne                     BIGINT,
    genre_feminin                       BIGINT,
    genre_masculin                      BIGINT,
    genre_non_communique                BIGINT,
    tranche_age_moins_de_douze          BIGINT,
    tranche_age_douze_dix_huit          BIGINT,
    tranche_age_dix_huit_vingt_quatre   BIGINT,
    tranche_age_vingt_cinq_trente_neuf  BIGINT,
    tranche_age_quarante_cinquante_neuf BIGINT,
    tranche_age_soixante_soixante_neuf  BIGINT,
    tranche_age_soixante_dix_plus       BIGINT,
    tranche_age_non_communique          BIGINT,
    statut_social_scolarise             BIGINT,
    statut_social_sans_emploi           BIGINT,
    statut_social_en_emploi             BIGINT,
    statut_social_retraite              BIGINT,
    statut_social_non_communique        BIGINT
);
CREATE INDEX participants_anonymes_activite ON participants_anonymes (activite_id);

-- Appointments, home visits included (the Coop receives them from RDV
-- Service Public). debut and fin are ISO 8601 date-times in UTC.
CREATE TABLE rendez_vous (
    id              TEXT PRIMARY KEY NOT NULL,
    mediateur_id    TEXT,
    beneficiaire_id TEXT,
    debut           TEXT,
    fin             TEXT,
    adresse         TEXT,
    commune         TEXT,
    code_insee      TEXT,
    collectif       BIGINT,
    statut          TEXT
);
CREATE INDEX rendez_vous_mediateur_debut ON rendez_vous (mediateur_id, debut);
CREATE INDEX rendez_vous_beneficiaire ON rendez_vous (beneficiaire_id);

-- A coordinator's own activities. The coordinator is in mediateur_id,
-- the owner column every owned table shares, so scoping keys on it.
CREATE TABLE activite_coordination (
    id                  TEXT PRIMARY KEY NOT NULL,
    mediateur_id        TEXT,
    type                TEXT,
    date                TEXT,
    duree               BIGINT,
    intitule            TEXT,
    echelon_territorial TEXT,
    notes               TEXT
);
CREATE INDEX activite_coordination_mediateur_date ON activite_coordination (mediateur_id, date);

-- +goose Down
DROP TABLE activite_coordination;
DROP TABLE rendez_vous;
DROP TABLE participants_anonymes;
DROP TABLE accompagnement;
ALTER TABLE activite DROP COLUMN rendez_vous_id;
ALTER TABLE activite DROP COLUMN niveau;
ALTER TABLE activite DROP COLUMN titre_atelier;
ALTER TABLE activite DROP COLUMN precisions_demarche;
ALTER TABLE activite DROP COLUMN structure_de_redirection;
ALTER TABLE activite DROP COLUMN oriente_vers_structure;
ALTER TABLE activite DROP COLUMN thematiques;
ALTER TABLE activite DROP COLUMN materiel;
ALTER TABLE activite DROP COLUMN code_postal;
ALTER TABLE beneficiaire DROP COLUMN fusion_vers_id;
ALTER TABLE beneficiaire DROP COLUMN pas_de_telephone;
ALTER TABLE structure DROP COLUMN typologie;
