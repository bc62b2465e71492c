BEGIN TRANSACTION;
CREATE TABLE endpoint_connections (
	endpoint VARCHAR(200) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	message TEXT, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (endpoint)
);
INSERT INTO "endpoint_connections" VALUES('src','successful',NULL,'2026-12-04 17:42:36.751199');
CREATE TABLE events (
	seq INTEGER NOT NULL, 
	id VARCHAR(64) NOT NULL, 
	time DATETIME NOT NULL, 
	source VARCHAR(200) NOT NULL, 
	detail_type VARCHAR(200) NOT NULL, 
	event JSON NOT NULL, 
	PRIMARY KEY (seq), 
	UNIQUE (id)
);
INSERT INTO "events" VALUES(1,'ev-1','2026-11-30 12:00:00.000000','conveyor.task','Task Started','{"id": "ev-1", "time": "2026-11-30T12:00:00Z", "source": "conveyor.task", "detail-type": "Task Started", "detail": {"task": "orders"}}');
CREATE TABLE execution_events (
	seq INTEGER NOT NULL, 
	execution_id VARCHAR(64) NOT NULL, 
	event_id INTEGER NOT NULL, 
	type VARCHAR(60) NOT NULL, 
	timestamp VARCHAR(40) NOT NULL, 
	details JSON NOT NULL, 
	PRIMARY KEY (seq)
);
INSERT INTO "execution_events" VALUES(1,'ex-1',1,'ExecutionStarted','t','{}');
CREATE TABLE executions (
	id VARCHAR(64) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	state_machine VARCHAR(200) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	record JSON NOT NULL, 
	start_time DATETIME NOT NULL, 
	stop_time DATETIME, 
	owner_pid INTEGER, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "executions" VALUES('ex-1','e1','sm','SUCCEEDED','{"cursor": {"state": "Done"}}','2026-11-30 12:00:00.000000','2026-11-30 12:00:00.000000',NULL,'2026-12-04 17:42:36.744524');
CREATE TABLE job_runs (
	id VARCHAR(64) NOT NULL, 
	job_name VARCHAR(255) NOT NULL, 
	state VARCHAR(20) NOT NULL, 
	arguments JSON NOT NULL, 
	started_on DATETIME NOT NULL, 
	completed_on DATETIME, 
	error TEXT, 
	tables JSON, 
	pid INTEGER, 
	PRIMARY KEY (id)
);
INSERT INTO "job_runs" VALUES('jr-1','curate','SUCCEEDED','{}','2026-11-30 12:00:00.000000',NULL,NULL,NULL,NULL);
CREATE TABLE load_segments (
	id INTEGER NOT NULL, 
	task VARCHAR(200) NOT NULL, 
	run_id INTEGER NOT NULL, 
	schema_name VARCHAR(200) NOT NULL, 
	table_name VARCHAR(200) NOT NULL, 
	seq INTEGER NOT NULL, 
	snapshot_id VARCHAR(200), 
	spec JSON NOT NULL, 
	state VARCHAR(20) NOT NULL, 
	owner VARCHAR(300), 
	lease_until DATETIME, 
	attempt INTEGER NOT NULL, 
	claims JSON NOT NULL, 
	rows BIGINT, 
	error TEXT, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (run_id, schema_name, table_name, seq)
);
INSERT INTO "load_segments" VALUES(1,'orders',1,'main','orders',0,NULL,'{"where": "1=1"}','done',NULL,NULL,1,'["host:1"]',3,NULL,'2026-11-30 12:00:00.000000');
CREATE TABLE runs (
	id INTEGER NOT NULL, 
	task VARCHAR(200) NOT NULL, 
	pid INTEGER, 
	status VARCHAR(20) NOT NULL, 
	started_at DATETIME NOT NULL, 
	stopped_at DATETIME, 
	stop_reason TEXT, 
	error TEXT, 
	PRIMARY KEY (id)
);
INSERT INTO "runs" VALUES(1,'orders',4242,'stopped','2026-12-04 17:42:36.670986','2026-12-04 17:42:36.710887','STOP_REASON_NORMAL',NULL);
CREATE TABLE schedule_state (
	rule VARCHAR(200) NOT NULL, 
	last_fire DATETIME NOT NULL, 
	PRIMARY KEY (rule)
);
INSERT INTO "schedule_state" VALUES('nightly','2026-11-30 12:00:00.000000');
CREATE TABLE schema_version (
	version INTEGER NOT NULL
);
INSERT INTO "schema_version" VALUES(7);
CREATE TABLE stacks (
	id INTEGER NOT NULL, 
	document JSON NOT NULL, 
	applied_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "stacks" VALUES(1,'{"endpoints": {"src": {"engine": "sqlite", "path": "src.db"}}}','2026-12-04 17:42:36.663734');
CREATE TABLE statements (
	id VARCHAR(64) NOT NULL, 
	endpoint VARCHAR(200) NOT NULL, 
	"database" VARCHAR(200), 
	statement_name VARCHAR(500), 
	"query" TEXT NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	error TEXT, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	started_at DATETIME, 
	duration_ns BIGINT, 
	result_rows BIGINT, 
	has_result_set BOOLEAN, 
	result JSON, 
	pid INTEGER, 
	backend_pid INTEGER, 
	PRIMARY KEY (id)
);
INSERT INTO "statements" VALUES('st-1','src',NULL,NULL,'select 1','FINISHED',NULL,'2026-12-04 17:42:36.741957','2026-12-04 17:42:36.741963',NULL,NULL,NULL,NULL,NULL,NULL,NULL);
CREATE TABLE table_stats (
	run_id INTEGER NOT NULL, 
	task VARCHAR(200) NOT NULL, 
	schema_name VARCHAR(200) NOT NULL, 
	table_name VARCHAR(200) NOT NULL, 
	stats JSON NOT NULL, 
	UNIQUE (run_id, schema_name, table_name)
);
INSERT INTO "table_stats" VALUES(1,'orders','main','orders','{"FullLoadRows": 3}');
CREATE TABLE table_suspensions (
	task VARCHAR(200) NOT NULL, 
	schema_name VARCHAR(200) NOT NULL, 
	table_name VARCHAR(200) NOT NULL, 
	target_schema VARCHAR(200) NOT NULL, 
	target_table VARCHAR(200) NOT NULL, 
	state VARCHAR(20) NOT NULL, 
	reason TEXT NOT NULL, 
	position JSON, 
	updated_at DATETIME NOT NULL, 
	UNIQUE (task, schema_name, table_name)
);
INSERT INTO "table_suspensions" VALUES('orders','main','items','dw','items','suspended','column ''a'' changed type','{"lsn": 42}','2026-12-04 17:42:36.723484');
CREATE TABLE task_progress (
	task VARCHAR(200) NOT NULL, 
	run_id INTEGER NOT NULL, 
	detail JSON NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (task)
);
INSERT INTO "task_progress" VALUES('orders',1,'{"CDCLatencySource": 0.5, "AppliedChanges": 7}','2026-12-04 17:42:36.692677');
CREATE TABLE task_samples (
	seq INTEGER NOT NULL, 
	task VARCHAR(200) NOT NULL, 
	run_id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	latency_source FLOAT, 
	latency_target FLOAT, 
	retained_wal_bytes BIGINT, 
	applied_changes BIGINT, 
	PRIMARY KEY (seq)
);
INSERT INTO "task_samples" VALUES(1,'orders',1,'2026-12-04 17:42:36.692677',0.5,NULL,NULL,7);
CREATE TABLE task_tokens (
	token VARCHAR(200) NOT NULL, 
	execution_id VARCHAR(64) NOT NULL, 
	state VARCHAR(200) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	output JSON, 
	error TEXT, 
	cause TEXT, 
	issued_at DATETIME NOT NULL, 
	heartbeat_at DATETIME, 
	PRIMARY KEY (token)
);
INSERT INTO "task_tokens" VALUES('tok-1','ex-1','Wait','waiting',NULL,NULL,NULL,'2026-11-30 12:00:00.000000',NULL);
CREATE TABLE tasks (
	name VARCHAR(200) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	stop_reason TEXT, 
	last_error TEXT, 
	current_run INTEGER, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO "tasks" VALUES('orders','stopped','STOP_REASON_NORMAL',NULL,1,'2026-12-04 17:42:36.716718');
CREATE INDEX ix_runs_task ON runs (task);
CREATE INDEX ix_events_time ON events (time);
CREATE INDEX ix_task_samples_task_at ON task_samples (task, at);
CREATE INDEX ix_load_segments_run_id ON load_segments (run_id);
CREATE INDEX ix_load_segments_state ON load_segments (state);
CREATE INDEX ix_statements_status ON statements (status);
CREATE INDEX ix_executions_state_machine ON executions (state_machine);
CREATE INDEX ix_executions_status ON executions (status);
CREATE INDEX ix_execution_events_execution_id ON execution_events (execution_id);
CREATE INDEX ix_task_tokens_execution_id ON task_tokens (execution_id);
CREATE INDEX ix_job_runs_job_name ON job_runs (job_name);
COMMIT;
