//! SCONE CAS: the session model, the embedded local CAS, its HTTPS server and the
//! remote CAS client.
