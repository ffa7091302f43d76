/*
 * gen_fields: writes tk/bus/fields.h, the field numbers of every bus
 * message, from the descriptors protoc-c compiled from proto/ (so the
 * .proto files stay the only place a field number is written).
 *
 *	TK_F_<MESSAGE>_<FIELD>	field number
 *	TK_W_<MESSAGE>_<FIELD>	wire type (TK_WIRE_*)
 *	TK_T_<MESSAGE>_<FIELD>	protobuf type (TK_PBT_*)
 *
 * <MESSAGE> is the message name in upper snake case, acronyms kept whole
 * (DERPNode -> DERP_NODE, NetmapDelta -> NETMAP_DELTA); <FIELD> is the
 * field name upper-cased.  Two messages/fields that map to one name are an
 * error, as is any write failure (the build stops).
 *
 * Usage: gen_fields OUT.h
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_fields.h"

#define NAME_MAX_LEN 160
#define MAX_NAMES    4096

static char names[MAX_NAMES][NAME_MAX_LEN * 2];
static size_t nnames;

/* DERPNode -> DERP_NODE, PeerChange -> PEER_CHANGE, IPMatch -> IP_MATCH */
static int
upper_snake(const char *in, char *out, size_t cap)
{
	size_t k = 0, n = strlen(in);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		bool cut = false;

		if (i > 0 && isupper(c)) {
			unsigned char p = (unsigned char)in[i - 1];
			unsigned char nx = i + 1 < n ? (unsigned char)in[i + 1] : 0;

			cut = islower(p) || isdigit(p) ||
			    (isupper(p) && islower(nx));
		}
		if (k + 3 > cap)
			return -1;
		if (cut && out[k - 1] != '_')
			out[k++] = '_';
		out[k++] = (char)toupper(c);
	}
	out[k] = '\0';
	return 0;
}

static int
wire_type(const ProtobufCFieldDescriptor *f, const char **w)
{
	if (f->label == PROTOBUF_C_LABEL_REPEATED &&
	    (f->flags & PROTOBUF_C_FIELD_FLAG_PACKED)) {
		*w = "TK_WIRE_LEN";
		return 0;
	}
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_BOOL:
	case PROTOBUF_C_TYPE_ENUM:
		*w = "TK_WIRE_VARINT";
		return 0;
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		*w = "TK_WIRE_I64";
		return 0;
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		*w = "TK_WIRE_I32";
		return 0;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES:
	case PROTOBUF_C_TYPE_MESSAGE:
		*w = "TK_WIRE_LEN";
		return 0;
	}
	return -1;
}

static const char *
type_name(const ProtobufCFieldDescriptor *f)
{
	static const char *const t[] = {
		[PROTOBUF_C_TYPE_INT32] = "int32",
		[PROTOBUF_C_TYPE_SINT32] = "sint32",
		[PROTOBUF_C_TYPE_SFIXED32] = "sfixed32",
		[PROTOBUF_C_TYPE_INT64] = "int64",
		[PROTOBUF_C_TYPE_SINT64] = "sint64",
		[PROTOBUF_C_TYPE_SFIXED64] = "sfixed64",
		[PROTOBUF_C_TYPE_UINT32] = "uint32",
		[PROTOBUF_C_TYPE_FIXED32] = "fixed32",
		[PROTOBUF_C_TYPE_UINT64] = "uint64",
		[PROTOBUF_C_TYPE_FIXED64] = "fixed64",
		[PROTOBUF_C_TYPE_FLOAT] = "float",
		[PROTOBUF_C_TYPE_DOUBLE] = "double",
		[PROTOBUF_C_TYPE_BOOL] = "bool",
		[PROTOBUF_C_TYPE_ENUM] = "enum",
		[PROTOBUF_C_TYPE_STRING] = "string",
		[PROTOBUF_C_TYPE_BYTES] = "bytes",
		[PROTOBUF_C_TYPE_MESSAGE] = "message",
	};

	if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor != NULL)
		return ((const ProtobufCMessageDescriptor *)f->descriptor)->name;
	if (f->type == PROTOBUF_C_TYPE_ENUM && f->descriptor != NULL)
		return ((const ProtobufCEnumDescriptor *)f->descriptor)->name;
	return t[f->type];
}

/* TK_PBT_* suffix: protobuf-c's ProtobufCType names */
static const char *
pbt_name(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32: return "INT32";
	case PROTOBUF_C_TYPE_SINT32: return "SINT32";
	case PROTOBUF_C_TYPE_SFIXED32: return "SFIXED32";
	case PROTOBUF_C_TYPE_INT64: return "INT64";
	case PROTOBUF_C_TYPE_SINT64: return "SINT64";
	case PROTOBUF_C_TYPE_SFIXED64: return "SFIXED64";
	case PROTOBUF_C_TYPE_UINT32: return "UINT32";
	case PROTOBUF_C_TYPE_FIXED32: return "FIXED32";
	case PROTOBUF_C_TYPE_UINT64: return "UINT64";
	case PROTOBUF_C_TYPE_FIXED64: return "FIXED64";
	case PROTOBUF_C_TYPE_FLOAT: return "FLOAT";
	case PROTOBUF_C_TYPE_DOUBLE: return "DOUBLE";
	case PROTOBUF_C_TYPE_BOOL: return "BOOL";
	case PROTOBUF_C_TYPE_ENUM: return "ENUM";
	case PROTOBUF_C_TYPE_STRING: return "STRING";
	case PROTOBUF_C_TYPE_BYTES: return "BYTES";
	case PROTOBUF_C_TYPE_MESSAGE: return "MESSAGE";
	}
	return "UNKNOWN";
}

/* false if name was already taken */
static bool
claim(const char *name)
{
	for (size_t i = 0; i < nnames; i++)
		if (strcmp(names[i], name) == 0)
			return false;
	if (nnames == MAX_NAMES)
		return false;
	snprintf(names[nnames++], sizeof(names[0]), "%s", name);
	return true;
}

static int
emit_message(FILE *o, const ProtobufCMessageDescriptor *d)
{
	char msg[NAME_MAX_LEN], name[NAME_MAX_LEN * 2];

	if (upper_snake(d->short_name, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "gen_fields: %s: name too long\n", d->name);
		return -1;
	}
	fprintf(o, "\n/* %s */\n", d->name);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *w, *label;
		size_t k;

		snprintf(name, sizeof(name), "%s_%s", msg, f->name);
		for (k = strlen(msg) + 1; name[k] != '\0'; k++)
			name[k] = (char)toupper((unsigned char)name[k]);
		if (wire_type(f, &w) != 0) {
			fprintf(stderr, "gen_fields: %s.%s: unknown type %d\n",
			    d->name, f->name, (int)f->type);
			return -1;
		}
		if (!claim(name)) {
			fprintf(stderr, "gen_fields: %s.%s: name TK_F_%s is "
			    "taken\n", d->name, f->name, name);
			return -1;
		}
		label = f->label == PROTOBUF_C_LABEL_REPEATED ? "repeated" :
		    f->label == PROTOBUF_C_LABEL_REQUIRED     ? "required" :
		    f->label == PROTOBUF_C_LABEL_NONE	      ? "oneof" :
								"optional";
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
			label = "oneof";
		fprintf(o, "#define TK_F_%s %u /* %s %s %s */\n", name, f->id,
		    label, type_name(f), f->name);
		fprintf(o, "#define TK_W_%s %s\n", name, w);
		fprintf(o, "#define TK_T_%s TK_PBT_%s\n", name,
		    pbt_name(f->type));
	}
	return 0;
}

int
main(int argc, char **argv)
{
	FILE *o;
	int rv = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_fields OUT.h\n");
		return 2;
	}
	if ((o = fopen(argv[1], "w")) == NULL) {
		perror(argv[1]);
		return 1;
	}
	fputs("/*\n"
	      " * Generated by proto/gen_fields.c from the descriptors protoc-c\n"
	      " * compiled from the .proto files under proto/: do not edit.  Those\n"
	      " * files are the only source of a field number; hand encoders\n"
	      " * write TK_FIELD(MESSAGE_FIELD, WIRE) or TK_TAG(MESSAGE_FIELD),\n"
	      " * never a literal.\n"
	      " *\n"
	      " *   TK_F_<MESSAGE>_<FIELD>  field number\n"
	      " *   TK_W_<MESSAGE>_<FIELD>  wire type\n"
	      " *   TK_T_<MESSAGE>_<FIELD>  protobuf type\n"
	      " */\n"
	      "#ifndef TK_BUS_FIELDS_H\n"
	      "#define TK_BUS_FIELDS_H\n"
	      "\n"
	      "/* Wire types (protobuf encoding: VARINT, I64, LEN, I32). */\n"
	      "#define TK_WIRE_VARINT 0\n"
	      "#define TK_WIRE_I64 1\n"
	      "#define TK_WIRE_LEN 2\n"
	      "#define TK_WIRE_I32 5\n"
	      "\n"
	      "/* Protobuf types (protobuf-c's PROTOBUF_C_TYPE_*). */\n"
	      "#define TK_PBT_INT32 1\n"
	      "#define TK_PBT_SINT32 2\n"
	      "#define TK_PBT_SFIXED32 3\n"
	      "#define TK_PBT_INT64 4\n"
	      "#define TK_PBT_SINT64 5\n"
	      "#define TK_PBT_SFIXED64 6\n"
	      "#define TK_PBT_UINT32 7\n"
	      "#define TK_PBT_FIXED32 8\n"
	      "#define TK_PBT_UINT64 9\n"
	      "#define TK_PBT_FIXED64 10\n"
	      "#define TK_PBT_FLOAT 11\n"
	      "#define TK_PBT_DOUBLE 12\n"
	      "#define TK_PBT_BOOL 13\n"
	      "#define TK_PBT_ENUM 14\n"
	      "#define TK_PBT_STRING 15\n"
	      "#define TK_PBT_BYTES 16\n"
	      "#define TK_PBT_MESSAGE 17\n"
	      "\n"
	      "/* Field number of F (MESSAGE_FIELD) where COND holds, else a\n"
	      " * compile-time error (a negative array size). */\n"
	      "#define TK_FIELD_IF(F, COND) \\\n"
	      "\t((unsigned)(TK_F_##F + 0 * sizeof(char[(COND) ? 1 : -1])))\n"
	      "\n"
	      "/* Field number of F, checked to have wire type TK_WIRE_##W. */\n"
	      "#define TK_FIELD(F, W) TK_FIELD_IF(F, TK_W_##F == TK_WIRE_##W)\n"
	      "\n"
	      "/* Field number of F, checked to have protobuf type TK_PBT_##T. */\n"
	      "#define TK_FIELD_T(F, T) TK_FIELD_IF(F, TK_T_##F == TK_PBT_##T)\n"
	      "\n"
	      "/* The tag (key) of field F: number << 3 | wire type. */\n"
	      "#define TK_TAG(F) ((unsigned)(TK_F_##F << 3 | TK_W_##F))\n",
	    o);
	for (size_t i = 0; tk_gen_descriptors[i] != NULL && rv == 0; i++)
		rv = emit_message(o, tk_gen_descriptors[i]);
	fputs("\n#endif\n", o);
	if (fclose(o) != 0 || rv != 0) {
		if (rv == 0)
			perror(argv[1]);
		remove(argv[1]);
		return 1;
	}
	return 0;
}
