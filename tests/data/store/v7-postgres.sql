--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: endpoint_connections; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.endpoint_connections (
    endpoint character varying(200) NOT NULL,
    status character varying(20) NOT NULL,
    message text,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.events (
    seq integer NOT NULL,
    id character varying(64) NOT NULL,
    "time" timestamp with time zone NOT NULL,
    source character varying(200) NOT NULL,
    detail_type character varying(200) NOT NULL,
    event json NOT NULL
);


--
-- Name: events_seq_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.events_seq_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: events_seq_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.events_seq_seq OWNED BY public.events.seq;


--
-- Name: execution_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.execution_events (
    seq integer NOT NULL,
    execution_id character varying(64) NOT NULL,
    event_id integer NOT NULL,
    type character varying(60) NOT NULL,
    "timestamp" character varying(40) NOT NULL,
    details json NOT NULL
);


--
-- Name: execution_events_seq_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.execution_events_seq_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: execution_events_seq_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.execution_events_seq_seq OWNED BY public.execution_events.seq;


--
-- Name: executions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.executions (
    id character varying(64) NOT NULL,
    name character varying(200) NOT NULL,
    state_machine character varying(200) NOT NULL,
    status character varying(20) NOT NULL,
    record json NOT NULL,
    start_time timestamp with time zone NOT NULL,
    stop_time timestamp with time zone,
    owner_pid integer,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: job_runs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.job_runs (
    id character varying(64) NOT NULL,
    job_name character varying(255) NOT NULL,
    state character varying(20) NOT NULL,
    arguments json NOT NULL,
    started_on timestamp with time zone NOT NULL,
    completed_on timestamp with time zone,
    error text,
    tables json,
    pid integer
);


--
-- Name: load_segments; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.load_segments (
    id integer NOT NULL,
    task character varying(200) NOT NULL,
    run_id integer NOT NULL,
    schema_name character varying(200) NOT NULL,
    table_name character varying(200) NOT NULL,
    seq integer NOT NULL,
    snapshot_id character varying(200),
    spec json NOT NULL,
    state character varying(20) NOT NULL,
    owner character varying(300),
    lease_until timestamp with time zone,
    attempt integer NOT NULL,
    claims json NOT NULL,
    rows bigint,
    error text,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: load_segments_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.load_segments_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: load_segments_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.load_segments_id_seq OWNED BY public.load_segments.id;


--
-- Name: runs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.runs (
    id integer NOT NULL,
    task character varying(200) NOT NULL,
    pid integer,
    status character varying(20) NOT NULL,
    started_at timestamp with time zone NOT NULL,
    stopped_at timestamp with time zone,
    stop_reason text,
    error text
);


--
-- Name: runs_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.runs_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: runs_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.runs_id_seq OWNED BY public.runs.id;


--
-- Name: schedule_state; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schedule_state (
    rule character varying(200) NOT NULL,
    last_fire timestamp with time zone NOT NULL
);


--
-- Name: schema_version; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_version (
    version integer NOT NULL
);


--
-- Name: stacks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.stacks (
    id integer NOT NULL,
    document json NOT NULL,
    applied_at timestamp with time zone NOT NULL
);


--
-- Name: stacks_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.stacks_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: stacks_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.stacks_id_seq OWNED BY public.stacks.id;


--
-- Name: statements; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.statements (
    id character varying(64) NOT NULL,
    endpoint character varying(200) NOT NULL,
    database character varying(200),
    statement_name character varying(500),
    query text NOT NULL,
    status character varying(20) NOT NULL,
    error text,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    started_at timestamp with time zone,
    duration_ns bigint,
    result_rows bigint,
    has_result_set boolean,
    result json,
    pid integer,
    backend_pid integer
);


--
-- Name: table_stats; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.table_stats (
    run_id integer NOT NULL,
    task character varying(200) NOT NULL,
    schema_name character varying(200) NOT NULL,
    table_name character varying(200) NOT NULL,
    stats json NOT NULL
);


--
-- Name: table_suspensions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.table_suspensions (
    task character varying(200) NOT NULL,
    schema_name character varying(200) NOT NULL,
    table_name character varying(200) NOT NULL,
    target_schema character varying(200) NOT NULL,
    target_table character varying(200) NOT NULL,
    state character varying(20) NOT NULL,
    reason text NOT NULL,
    "position" json,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: task_progress; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.task_progress (
    task character varying(200) NOT NULL,
    run_id integer NOT NULL,
    detail json NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: task_samples; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.task_samples (
    seq integer NOT NULL,
    task character varying(200) NOT NULL,
    run_id integer NOT NULL,
    at timestamp with time zone NOT NULL,
    latency_source double precision,
    latency_target double precision,
    retained_wal_bytes bigint,
    applied_changes bigint
);


--
-- Name: task_samples_seq_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.task_samples_seq_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: task_samples_seq_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.task_samples_seq_seq OWNED BY public.task_samples.seq;


--
-- Name: task_tokens; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.task_tokens (
    token character varying(200) NOT NULL,
    execution_id character varying(64) NOT NULL,
    state character varying(200) NOT NULL,
    status character varying(20) NOT NULL,
    output json,
    error text,
    cause text,
    issued_at timestamp with time zone NOT NULL,
    heartbeat_at timestamp with time zone
);


--
-- Name: tasks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tasks (
    name character varying(200) NOT NULL,
    status character varying(20) NOT NULL,
    stop_reason text,
    last_error text,
    current_run integer,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: events seq; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events ALTER COLUMN seq SET DEFAULT nextval('public.events_seq_seq'::regclass);


--
-- Name: execution_events seq; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.execution_events ALTER COLUMN seq SET DEFAULT nextval('public.execution_events_seq_seq'::regclass);


--
-- Name: load_segments id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.load_segments ALTER COLUMN id SET DEFAULT nextval('public.load_segments_id_seq'::regclass);


--
-- Name: runs id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.runs ALTER COLUMN id SET DEFAULT nextval('public.runs_id_seq'::regclass);


--
-- Name: stacks id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.stacks ALTER COLUMN id SET DEFAULT nextval('public.stacks_id_seq'::regclass);


--
-- Name: task_samples seq; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_samples ALTER COLUMN seq SET DEFAULT nextval('public.task_samples_seq_seq'::regclass);


--
-- Data for Name: endpoint_connections; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.endpoint_connections VALUES ('src', 'successful', NULL, '2026-12-04 17:42:39.868548+00');


--
-- Data for Name: events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.events VALUES (1, 'ev-1', '2026-11-30 12:00:00+00', 'conveyor.task', 'Task Started', '{"id": "ev-1", "time": "2026-11-30T12:00:00Z", "source": "conveyor.task", "detail-type": "Task Started", "detail": {"task": "orders"}}');


--
-- Data for Name: execution_events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.execution_events VALUES (1, 'ex-1', 1, 'ExecutionStarted', 't', '{}');


--
-- Data for Name: executions; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.executions VALUES ('ex-1', 'e1', 'sm', 'SUCCEEDED', '{"cursor": {"state": "Done"}}', '2026-11-30 12:00:00+00', '2026-11-30 12:00:00+00', NULL, '2026-12-04 17:42:39.866826+00');


--
-- Data for Name: job_runs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.job_runs VALUES ('jr-1', 'curate', 'SUCCEEDED', '{}', '2026-11-30 12:00:00+00', NULL, NULL, NULL, NULL);


--
-- Data for Name: load_segments; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.load_segments VALUES (1, 'orders', 1, 'main', 'orders', 0, NULL, '{"where": "1=1"}', 'done', NULL, NULL, 1, '["host:1"]', 3, NULL, '2026-11-30 12:00:00+00');


--
-- Data for Name: runs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.runs VALUES (1, 'orders', 4242, 'stopped', '2026-12-04 17:42:39.836205+00', '2026-12-04 17:42:39.854324+00', 'STOP_REASON_NORMAL', NULL);


--
-- Data for Name: schedule_state; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.schedule_state VALUES ('nightly', '2026-11-30 12:00:00+00');


--
-- Data for Name: schema_version; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.schema_version VALUES (7);


--
-- Data for Name: stacks; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.stacks VALUES (1, '{"endpoints": {"src": {"engine": "sqlite", "path": "src.db"}}}', '2026-12-04 17:42:39.834831+00');


--
-- Data for Name: statements; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.statements VALUES ('st-1', 'src', NULL, NULL, 'select 1', 'FINISHED', NULL, '2026-12-04 17:42:39.864974+00', '2026-12-04 17:42:39.864977+00', NULL, NULL, NULL, NULL, NULL, NULL, NULL);


--
-- Data for Name: table_stats; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.table_stats VALUES (1, 'orders', 'main', 'orders', '{"FullLoadRows": 3}');


--
-- Data for Name: table_suspensions; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.table_suspensions VALUES ('orders', 'main', 'items', 'dw', 'items', 'suspended', 'column ''a'' changed type', '{"lsn": 42}', '2026-12-04 17:42:39.856701+00');


--
-- Data for Name: task_progress; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.task_progress VALUES ('orders', 1, '{"CDCLatencySource": 0.5, "AppliedChanges": 7}', '2026-12-04 17:42:39.84949+00');


--
-- Data for Name: task_samples; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.task_samples VALUES (1, 'orders', 1, '2026-12-04 17:42:39.84949+00', 0.5, NULL, NULL, 7);


--
-- Data for Name: task_tokens; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.task_tokens VALUES ('tok-1', 'ex-1', 'Wait', 'waiting', NULL, NULL, NULL, '2026-11-30 12:00:00+00', NULL);


--
-- Data for Name: tasks; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.tasks VALUES ('orders', 'stopped', 'STOP_REASON_NORMAL', NULL, 1, '2026-12-04 17:42:39.855119+00');


--
-- Name: events_seq_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.events_seq_seq', 1, true);


--
-- Name: execution_events_seq_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.execution_events_seq_seq', 1, true);


--
-- Name: load_segments_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.load_segments_id_seq', 1, true);


--
-- Name: runs_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.runs_id_seq', 1, true);


--
-- Name: stacks_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.stacks_id_seq', 1, true);


--
-- Name: task_samples_seq_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.task_samples_seq_seq', 1, true);


--
-- Name: endpoint_connections endpoint_connections_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.endpoint_connections
    ADD CONSTRAINT endpoint_connections_pkey PRIMARY KEY (endpoint);


--
-- Name: events events_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_id_key UNIQUE (id);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (seq);


--
-- Name: execution_events execution_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.execution_events
    ADD CONSTRAINT execution_events_pkey PRIMARY KEY (seq);


--
-- Name: executions executions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.executions
    ADD CONSTRAINT executions_pkey PRIMARY KEY (id);


--
-- Name: job_runs job_runs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.job_runs
    ADD CONSTRAINT job_runs_pkey PRIMARY KEY (id);


--
-- Name: load_segments load_segments_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.load_segments
    ADD CONSTRAINT load_segments_pkey PRIMARY KEY (id);


--
-- Name: load_segments load_segments_run_id_schema_name_table_name_seq_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.load_segments
    ADD CONSTRAINT load_segments_run_id_schema_name_table_name_seq_key UNIQUE (run_id, schema_name, table_name, seq);


--
-- Name: runs runs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.runs
    ADD CONSTRAINT runs_pkey PRIMARY KEY (id);


--
-- Name: schedule_state schedule_state_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schedule_state
    ADD CONSTRAINT schedule_state_pkey PRIMARY KEY (rule);


--
-- Name: stacks stacks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.stacks
    ADD CONSTRAINT stacks_pkey PRIMARY KEY (id);


--
-- Name: statements statements_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.statements
    ADD CONSTRAINT statements_pkey PRIMARY KEY (id);


--
-- Name: table_stats table_stats_run_id_schema_name_table_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.table_stats
    ADD CONSTRAINT table_stats_run_id_schema_name_table_name_key UNIQUE (run_id, schema_name, table_name);


--
-- Name: table_suspensions table_suspensions_task_schema_name_table_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.table_suspensions
    ADD CONSTRAINT table_suspensions_task_schema_name_table_name_key UNIQUE (task, schema_name, table_name);


--
-- Name: task_progress task_progress_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_progress
    ADD CONSTRAINT task_progress_pkey PRIMARY KEY (task);


--
-- Name: task_samples task_samples_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_samples
    ADD CONSTRAINT task_samples_pkey PRIMARY KEY (seq);


--
-- Name: task_tokens task_tokens_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_tokens
    ADD CONSTRAINT task_tokens_pkey PRIMARY KEY (token);


--
-- Name: tasks tasks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT tasks_pkey PRIMARY KEY (name);


--
-- Name: ix_events_time; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_events_time ON public.events USING btree ("time");


--
-- Name: ix_execution_events_execution_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_execution_events_execution_id ON public.execution_events USING btree (execution_id);


--
-- Name: ix_executions_state_machine; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_executions_state_machine ON public.executions USING btree (state_machine);


--
-- Name: ix_executions_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_executions_status ON public.executions USING btree (status);


--
-- Name: ix_job_runs_job_name; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_job_runs_job_name ON public.job_runs USING btree (job_name);


--
-- Name: ix_load_segments_run_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_load_segments_run_id ON public.load_segments USING btree (run_id);


--
-- Name: ix_load_segments_state; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_load_segments_state ON public.load_segments USING btree (state);


--
-- Name: ix_runs_task; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_runs_task ON public.runs USING btree (task);


--
-- Name: ix_statements_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_statements_status ON public.statements USING btree (status);


--
-- Name: ix_task_samples_task_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_task_samples_task_at ON public.task_samples USING btree (task, at);


--
-- Name: ix_task_tokens_execution_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_task_tokens_execution_id ON public.task_tokens USING btree (execution_id);


--
-- PostgreSQL database dump complete
--


