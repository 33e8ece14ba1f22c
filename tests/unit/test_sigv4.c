/* Unit tests of SigV4 signing: AWS's published vectors (the aws-sig-v4-test-suite
 * and the IAM example of AWS's docs), a Bedrock Converse call, each rule of the
 * canonical form, every refusal, and a property test that signing never writes
 * past its output buffers whatever the lengths (run under ASan too).
 *
 * The Bedrock values were cross-checked three ways: tests/mock/sigv4.py (written
 * apart from sigv4.c, from AWS's spec) and botocore 1.43's SigV4Auth, AWS's own
 * signer, with its clock patched to 2024-06-20T10:15:00Z, give the same canonical
 * request and signatures; tests/mock/test_sigv4_py.py checks both again. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

#include "sigv4.h"

/* S() (testutil.h): a C string as a slice. */

/* ---- the aws-sig-v4-test-suite ---- */

#define SUITE_TIME INT64_C(1440938160) /* 20150830T123600Z */
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HOST_DATE "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n"
#define VANILLA "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
#define VANILLA_CREQ_SHA "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
#define POST_VANILLA "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
#define POST_VANILLA_CREQ_SHA "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87"
#define SUITE_TOKEN                                                                                 \
	"AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmx" \
	"fpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0" \
	"KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64l" \
	"IZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

struct vec {
	const char *name, *method, *path, *query;
	const struct sigv4_header *h;
	size_t nh;
	const char *body, *token;
	const char *creq_sha;     /* the last line of the published string to sign */
	const char *sig;
	const char *creq;         /* the whole canonical request, where it is worth reading */
};

#define H(n, v) { { (const uint8_t *)(n), sizeof(n) - 1 }, { (const uint8_t *)(v), sizeof(v) - 1 } }
/* A header list and its length. */
#define HDRS(...) (const struct sigv4_header[]){ __VA_ARGS__ }, \
	sizeof((const struct sigv4_header[]){ __VA_ARGS__ }) / sizeof(struct sigv4_header)

static const struct vec VECS[] = {
	{ "get-header-key-duplicate", "GET", "/", "",
	  HDRS(H("My-Header1", "value2"), H("My-Header1", "value2"), H("My-Header1", "value1")), "", NULL,
	  "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
	  "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
	  "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\n"
	  "host;my-header1;x-amz-date\n" EMPTY_SHA },
	{ "get-header-value-order", "GET", "/", "",
	  HDRS(H("My-Header1", "value4"), H("My-Header1", "value1"), H("My-Header1", "value3"), H("My-Header1", "value2")), "", NULL, "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
	  "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01", NULL },
	{ "get-header-value-trim", "GET", "/", "", HDRS(H("My-Header1", " value1"), H("My-Header2", " \"a   b   c\"")),
	  "", NULL, "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
	  "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
	  "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\n"
	  "host;my-header1;my-header2;x-amz-date\n" EMPTY_SHA },
	{ "get-unreserved", "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "", NULL,
	  0, "", NULL, "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
	  "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f", NULL },
	{ "get-utf8", "GET", "/\xe1\x88\xb4", "", NULL, 0, "", NULL,
	  "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
	  "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
	  "GET\n/%E1%88%B4\n\n" HOST_DATE "\nhost;x-amz-date\n" EMPTY_SHA },
	{ "get-vanilla", "GET", "/", "", NULL, 0, "", NULL, VANILLA_CREQ_SHA, VANILLA,
	  "GET\n/\n\n" HOST_DATE "\nhost;x-amz-date\n" EMPTY_SHA },
	{ "get-vanilla-empty-query-key", "GET", "/", "Param1=value1", NULL, 0, "", NULL,
	  "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
	  "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb", NULL },
	{ "get-vanilla-query-order-key", "GET", "/", "Param1=value2&Param1=Value1", NULL, 0, "", NULL,
	  "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
	  "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
	  "GET\n/\nParam1=Value1&Param1=value2\n" HOST_DATE "\nhost;x-amz-date\n" EMPTY_SHA },
	{ "get-vanilla-query-order-key-case", "GET", "/", "Param2=value2&Param1=value1", NULL, 0, "", NULL,
	  "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
	  "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
	  "GET\n/\nParam1=value1&Param2=value2\n" HOST_DATE "\nhost;x-amz-date\n" EMPTY_SHA },
	{ "get-vanilla-query-order-value", "GET", "/", "Param1=value2&Param1=value1", NULL, 0, "", NULL,
	  "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
	  "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694", NULL },
	{ "get-vanilla-query-unreserved", "GET", "/",
	  "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
	  "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
	  NULL, 0, "", NULL, "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
	  "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197", NULL },
	{ "get-vanilla-utf8-query", "GET", "/", "\xe1\x88\xb4=bar", NULL, 0, "", NULL,
	  "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
	  "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
	  "GET\n/\n%E1%88%B4=bar\n" HOST_DATE "\nhost;x-amz-date\n" EMPTY_SHA },
	{ "post-header-key-case", "POST", "/", "", NULL, 0, "", NULL, POST_VANILLA_CREQ_SHA, POST_VANILLA, NULL },
	{ "post-header-key-sort", "POST", "/", "", HDRS(H("My-Header1", "value1")), "", NULL,
	  "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
	  "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c", NULL },
	{ "post-header-value-case", "POST", "/", "", HDRS(H("My-Header1", "VALUE1")), "", NULL,
	  "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
	  "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d", NULL },
	{ "post-vanilla", "POST", "/", "", NULL, 0, "", NULL, POST_VANILLA_CREQ_SHA, POST_VANILLA,
	  "POST\n/\n\n" HOST_DATE "\nhost;x-amz-date\n" EMPTY_SHA },
	{ "post-vanilla-empty-query-value", "POST", "/", "Param1=value1", NULL, 0, "", NULL,
	  "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
	  "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11", NULL },
	/* The suite's .creq lists content-length too, but its .sts hashes the request
	 * without it, as its .authz signs: the .sts and .authz rule. */
	{ "post-x-www-form-urlencoded", "POST", "/", "", HDRS(H("Content-Type", "application/x-www-form-urlencoded")),
	  "Param1=value1", NULL, "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
	  "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
	  "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n" HOST_DATE "\ncontent-type;host;x-amz-date\n"
	  "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e" },
	/* Likewise; and its .sts was made with "charset=utf8", whatever its .req says. */
	{ "post-x-www-form-urlencoded-parameters", "POST", "/", "",
	  HDRS(H("Content-Type", "application/x-www-form-urlencoded; charset=utf8")), "Param1=value1", NULL,
	  "2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c",
	  "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe", NULL },
	{ "normalize-path/get-relative", "GET", "/example/..", "", NULL, 0, "", NULL, VANILLA_CREQ_SHA, VANILLA,
	  NULL },
	{ "normalize-path/get-relative-relative", "GET", "/example1/example2/../..", "", NULL, 0, "", NULL,
	  VANILLA_CREQ_SHA, VANILLA, NULL },
	{ "normalize-path/get-slash", "GET", "//", "", NULL, 0, "", NULL, VANILLA_CREQ_SHA, VANILLA, NULL },
	{ "normalize-path/get-slash-dot-slash", "GET", "/./", "", NULL, 0, "", NULL, VANILLA_CREQ_SHA, VANILLA,
	  NULL },
	{ "normalize-path/get-slash-pointless-dot", "GET", "/./example", "", NULL, 0, "", NULL,
	  "214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702",
	  "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
	  "GET\n/example\n\n" HOST_DATE "\nhost;x-amz-date\n" EMPTY_SHA },
	{ "normalize-path/get-slashes", "GET", "//example//", "", NULL, 0, "", NULL,
	  "cb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015",
	  "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
	  "GET\n/example/\n\n" HOST_DATE "\nhost;x-amz-date\n" EMPTY_SHA },
	/* The suite's path is not encoded on the way: its one encoding is AWS's second. */
	{ "normalize-path/get-space", "GET", "/example space/", "", NULL, 0, "", NULL,
	  "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
	  "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
	  "GET\n/example%20space/\n\n" HOST_DATE "\nhost;x-amz-date\n" EMPTY_SHA },
	{ "post-sts-token/post-sts-header-before", "POST", "/", "", NULL, 0, "", SUITE_TOKEN,
	  "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
	  "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
	  "POST\n/\n\n" HOST_DATE "x-amz-security-token:" SUITE_TOKEN "\n\nhost;x-amz-date;x-amz-security-token\n" EMPTY_SHA },
	/* "after": the token header is added once signed, so it is signed without one. */
	{ "post-sts-token/post-sts-header-after", "POST", "/", "", NULL, 0, "", NULL, POST_VANILLA_CREQ_SHA,
	  POST_VANILLA, NULL },
};
#define NVECS (sizeof(VECS) / sizeof(VECS[0]))

static void suite_vector(void **state)
{
	const struct vec *v = *state;
	struct sigv4_req req = {
		.method = S(v->method), .path = S(v->path), .query = S(v->query), .host = S("example.amazonaws.com"),
		.headers = v->h, .nheaders = v->nh, .payload = S(v->body), .region = S("us-east-1"),
		.service = S("service"), .time = SUITE_TIME, .flags = SIGV4_NO_SHA256_HEADER,
	};
	struct sigv4_creds cr = { S("AKIDEXAMPLE"), S(SUITE_SECRET), S(v->token) };
	char creq[2048], sts[256], want_sts[256], want_auth[512];

	assert_int_equal(sigv4_canonical(&req, &cr, creq, sizeof(creq), sts, sizeof(sts)), SIGV4_OK);
	if (v->creq)
		assert_string_equal(creq, v->creq);
	snprintf(want_sts, sizeof(want_sts), "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n%s",
	         v->creq_sha);
	assert_string_equal(sts, want_sts);

	struct sigv4_out *out = malloc(sizeof(*out));
	assert_non_null(out);
	assert_int_equal(sigv4_sign(&req, &cr, out), SIGV4_OK);
	/* SignedHeaders is the canonical request's line before the last. */
	const char *last = strrchr(creq, '\n'), *signed_list = last - 1;
	while (*signed_list != '\n')
		signed_list--;
	snprintf(want_auth, sizeof(want_auth),
	         "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=%.*s, "
	         "Signature=%s",
	         (int)(last - signed_list - 1), signed_list + 1, v->sig);
	assert_string_equal(out->authorization, want_auth);
	assert_string_equal(out->amz_date, "20150830T123600Z");
	assert_string_equal(out->security_token, v->token ? v->token : "");
	free(out);
}

/* ---- AWS's documented examples and Bedrock ---- */

/* IAM ListUsers, "Create a signed AWS API request" (the 2015 edition of the docs). */
static void iam_example(void **state)
{
	(void)state;
	struct sigv4_header ct = H("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
	struct sigv4_req req = {
		.method = S("GET"), .path = S("/"), .query = S("Action=ListUsers&Version=2010-05-08"),
		.host = S("iam.amazonaws.com"), .headers = &ct, .nheaders = 1, .region = S("us-east-1"),
		.service = S("iam"), .time = SUITE_TIME, .flags = SIGV4_NO_SHA256_HEADER,
	};
	struct sigv4_creds cr = { S("AKIDEXAMPLE"), S(SUITE_SECRET), S("") };
	char creq[1024], sts[256];
	assert_int_equal(sigv4_canonical(&req, &cr, creq, sizeof(creq), sts, sizeof(sts)), SIGV4_OK);
	assert_string_equal(creq, "GET\n/\nAction=ListUsers&Version=2010-05-08\n"
	                          "content-type:application/x-www-form-urlencoded; charset=utf-8\n"
	                          "host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
	                          "content-type;host;x-amz-date\n" EMPTY_SHA);
	assert_string_equal(sts, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n"
	                         "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
	struct sigv4_out out;
	assert_int_equal(sigv4_sign(&req, &cr, &out), SIGV4_OK);
	assert_string_equal(out.authorization,
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
	                    "SignedHeaders=content-type;host;x-amz-date, "
	                    "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
	assert_string_equal(out.security_token, "");
}

#define BR_PATH "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
#define BR_HOST "bedrock-runtime.us-east-1.amazonaws.com"
#define BR_BODY "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"Hello\"}]}],\"inferenceConfig\":{\"maxTokens\":64}}"
#define BR_SHA "f5b802cc64a01910fd197a46e9e959f3a5795f7728fa5710fb28f1ec3019f545"
#define BR_TOKEN "FwoGZXIvYXdzEXAMPLEsessiontoken/+="

static struct sigv4_header br_ct = H("content-type", "application/json");

static struct sigv4_req bedrock_req(void)
{
	return (struct sigv4_req){
		.method = S("POST"), .path = S(BR_PATH), .host = S(BR_HOST), .headers = &br_ct, .nheaders = 1,
		.payload = S(BR_BODY), .region = S("us-east-1"), .service = S("bedrock"),
		.time = INT64_C(1718878500), /* 20240620T101500Z */
	};
}

/* A Converse call as the agent will sign it: the model id's ':' is "%3A" on the
 * wire and "%253A" in the canonical request; x-amz-content-sha256, content-type
 * and the session token are signed. */
static void bedrock_converse(void **state)
{
	(void)state;
	struct sigv4_req req = bedrock_req();
	struct sigv4_creds cr = { S("AKIAIOSFODNN7EXAMPLE"), S("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), S(BR_TOKEN) };
	char creq[1024], sts[256];
	assert_int_equal(sigv4_canonical(&req, &cr, creq, sizeof(creq), sts, sizeof(sts)), SIGV4_OK);
	assert_string_equal(creq, "POST\n/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse\n\n"
	                          "content-type:application/json\nhost:" BR_HOST "\n"
	                          "x-amz-content-sha256:" BR_SHA "\nx-amz-date:20240620T101500Z\n"
	                          "x-amz-security-token:" BR_TOKEN "\n\n"
	                          "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token\n" BR_SHA);
	assert_string_equal(sts, "AWS4-HMAC-SHA256\n20240620T101500Z\n20240620/us-east-1/bedrock/aws4_request\n"
	                         "3ca01420e6837e8fe990125f5c20a50f8f7c5805003feca041db3656da711c98");
	struct sigv4_out out;
	assert_int_equal(sigv4_sign(&req, &cr, &out), SIGV4_OK);
	assert_string_equal(out.authorization,
	                    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240620/us-east-1/bedrock/aws4_request, "
	                    "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "
	                    "Signature=993a962c5473fb18b15ed7eca471427811bd7a2ca56a6b44f89d80afc87b1c7a");
	assert_string_equal(out.amz_date, "20240620T101500Z");
	assert_string_equal(out.content_sha256, BR_SHA);
	assert_string_equal(out.security_token, BR_TOKEN);

	/* Long-term keys: no token header, none signed. */
	cr.session_token = S("");
	assert_int_equal(sigv4_sign(&req, &cr, &out), SIGV4_OK);
	assert_string_equal(out.authorization,
	                    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240620/us-east-1/bedrock/aws4_request, "
	                    "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, "
	                    "Signature=c6cbcfc7a07565b50507b008b18710c41a672793637b9400679b89d670c85f36");
	assert_string_equal(out.security_token, "");

	/* One byte less of body, or the model id sent decoded, is another signature. */
	char sig[65];
	memcpy(sig, strstr(out.authorization, "Signature=") + 10, 65);
	req.payload.len--;
	assert_int_equal(sigv4_sign(&req, &cr, &out), SIGV4_OK);
	assert_string_not_equal(strstr(out.authorization, "Signature=") + 10, sig);
	req = bedrock_req();
	req.path = S("/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse");
	assert_int_equal(sigv4_canonical(&req, &cr, creq, sizeof(creq), NULL, 0), SIGV4_OK);
	assert_non_null(strstr(creq, "\n/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse\n"));
}

/* ---- the canonical form, rule by rule ---- */

/* The canonical request's line `line` (0: method) for this path and query. */
static void creq_line(const char *path, const char *query, int line, char *out, size_t cap)
{
	struct sigv4_req req = bedrock_req();
	req.path = S(path);
	req.query = S(query);
	struct sigv4_creds cr = { S("AKID"), S("secret"), S("") };
	char creq[2048];
	assert_int_equal(sigv4_canonical(&req, &cr, creq, sizeof(creq), NULL, 0), SIGV4_OK);
	const char *p = creq;
	for (int i = 0; i < line; i++)
		p = strchr(p, '\n') + 1;
	snprintf(out, cap, "%.*s", (int)strcspn(p, "\n"), p);
}

static void canonical_paths(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{ "/", "/" },
		{ BR_PATH, "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse" },
		{ "/model/a%2Fb/invoke", "/model/a%252Fb/invoke" }, /* an encoded '/' is no separator */
		{ "/a+b/~c/d=e", "/a%2Bb/~c/d%3De" },
		{ "/a/b/../c", "/a/c" },
		{ "/foo/bar/..", "/foo/" },
		{ "/..", "/" },
		{ "/../../a", "/a" },
		{ "/a/./b/.", "/a/b/" },
		{ "/a//b///", "/a/b/" },
		{ "/.a/..b/...", "/.a/..b/..." },
		{ "/%2E%2E/a", "/%252E%252E/a" }, /* an encoded dot is a name, not a dot */
		{ "/\x80\xff", "/%80%FF" },
	};
	char got[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		creq_line(cases[i][0], "", 1, got, sizeof(got));
		assert_string_equal(got, cases[i][1]);
	}
}

static void canonical_queries(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{ "", "" },
		{ "b=2&a=1", "a=1&b=2" },
		{ "a=x%20y", "a=x%20y" },
		{ "a=x y", "a=x%20y" },
		{ "a=x+y", "a=x%2By" },             /* '+' is a plus, not a space */
		{ "a=%2b%2F", "a=%2B%2F" },         /* decoded, then encoded in upper case */
		{ "a=%7E%41", "a=~A" },             /* unreserved, encoded or not, is itself */
		{ "a", "a=" },
		{ "a=", "a=" },
		{ "=v", "=v" },
		{ "a=1&&b&", "a=1&b=" },
		{ "a=%zz&b=%4", "a=%25zz&b=%254" }, /* a broken escape is a literal '%' */
		{ "a=b=c", "a=b%3Dc" },
		{ "a=%e1%88%b4", "a=%E1%88%B4" },
		{ "~=1&%C3%A4=2", "%C3%A4=2&~=1" }, /* sorted as encoded: '%' before '~' */
		{ "a-b=1&a=2", "a=2&a-b=1" },       /* by name first: "a" before "a-b" */
		{ "a=2&a=10&a=1", "a=1&a=10&a=2" },
	};
	char got[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		creq_line("/", cases[i][0], 2, got, sizeof(got));
		assert_string_equal(got, cases[i][1]);
	}
}

static void canonical_headers(void **state)
{
	(void)state;
	struct sigv4_header h[] = {
		H("X-B", "  two \t  words\t "), H("x-a", "1"), H("Content-Type", "application/json"), H("X-A", " 2 "),
		H("x-empty", ""), H("x-tabs", "\t\t"),
	};
	struct sigv4_req req = bedrock_req();
	req.headers = h;
	req.nheaders = sizeof(h) / sizeof(h[0]);
	req.flags = SIGV4_NO_SHA256_HEADER;
	struct sigv4_creds cr = { S("AKID"), S("secret"), S("") };
	char creq[2048];
	assert_int_equal(sigv4_canonical(&req, &cr, creq, sizeof(creq), NULL, 0), SIGV4_OK);
	assert_string_equal(strchr(strstr(creq, "\n\n") + 1, '\n') + 1,
	                    "content-type:application/json\nhost:" BR_HOST "\nx-a:1,2\nx-amz-date:20240620T101500Z\n"
	                    "x-b:two words\nx-empty:\nx-tabs:\n\n"
	                    "content-type;host;x-a;x-amz-date;x-b;x-empty;x-tabs\n" BR_SHA);
}

static void amz_dates(void **state)
{
	(void)state;
	static const struct {
		int64_t t;
		const char *date;
	} cases[] = {
		{ 0, "19700101T000000Z" },
		{ SUITE_TIME, "20150830T123600Z" },
		{ INT64_C(951782400), "20000229T000000Z" },
		{ INT64_C(951868799), "20000229T235959Z" },
		{ INT64_C(951868800), "20000301T000000Z" },
		{ INT64_C(4107542399), "21000228T235959Z" },
		{ INT64_C(4107542400), "21000301T000000Z" },   /* 2100 is no leap year */
		{ INT64_C(253402300799), "99991231T235959Z" },
	};
	struct sigv4_req req = bedrock_req();
	struct sigv4_creds cr = { S("AKID"), S("secret"), S("") };
	struct sigv4_out out;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		req.time = cases[i].t;
		assert_int_equal(sigv4_sign(&req, &cr, &out), SIGV4_OK);
		assert_string_equal(out.amz_date, cases[i].date);
		assert_non_null(strstr(out.authorization, "Credential=AKID/"));
		assert_memory_equal(strstr(out.authorization, "Credential=AKID/") + 16, cases[i].date, 8);
	}
}

/* ---- refusals ---- */

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static void expect(const struct sigv4_req *req, const struct sigv4_creds *cr, enum sigv4_status st)
{
	struct sigv4_out *out = malloc(sizeof(*out));
	assert_non_null(out);
	memset(out, 0x5a, sizeof(*out));
	assert_int_equal(sigv4_sign(req, cr, out), st);
	if (st != SIGV4_OK)
		assert_true(all_zero(out, sizeof(*out))); /* nothing half-signed to send */
	free(out);
	assert_string_not_equal(sigv4_strerror(st), "unknown status");
}

static void refusals(void **state)
{
	(void)state;
	struct sigv4_creds cr = { S("AKIAIOSFODNN7EXAMPLE"), S("secret"), S("") }, c;
	struct sigv4_req r;
	static char big[8192];
	memset(big, 'a', sizeof(big) - 1);

	r = bedrock_req();
	expect(&r, &cr, SIGV4_OK);
#define REFUSE(field, value, status) \
	do { r = bedrock_req(); r.field = (value); expect(&r, &cr, (status)); } while (0)
	REFUSE(method, S("post"), SIGV4_EMETHOD);
	REFUSE(method, S(""), SIGV4_EMETHOD);
	REFUSE(method, S("POSTPOSTPOSTPOSTX"), SIGV4_EMETHOD);
	REFUSE(path, S(""), SIGV4_EPATH);
	REFUSE(path, S("model/x"), SIGV4_EPATH);
	REFUSE(path, S("/model?x=1"), SIGV4_EPATH);
	REFUSE(path, S("/model#x"), SIGV4_EPATH);
	REFUSE(path, ((struct spop_slice){ (const uint8_t *)"/a\0b", 4 }), SIGV4_EPATH);
	REFUSE(path, ((struct spop_slice){ NULL, 3 }), SIGV4_EPATH);
	REFUSE(query, S("a=1#frag"), SIGV4_EQUERY);
	REFUSE(query, ((struct spop_slice){ NULL, 1 }), SIGV4_EQUERY);
	REFUSE(host, S(""), SIGV4_EHOST);
	REFUSE(host, S("bedrock runtime"), SIGV4_EHOST);
	REFUSE(host, S("host\r\nx-evil: 1"), SIGV4_EHOST);
	REFUSE(region, S(""), SIGV4_ESCOPE);
	REFUSE(region, S("US-EAST-1"), SIGV4_ESCOPE);
	REFUSE(region, S("us-east-1/x"), SIGV4_ESCOPE);
	REFUSE(service, S("bed rock"), SIGV4_ESCOPE);
	REFUSE(service, ((struct spop_slice){ (const uint8_t *)big, 65 }), SIGV4_ESCOPE);
	REFUSE(payload, ((struct spop_slice){ NULL, 1 }), SIGV4_EPAYLOAD);
	REFUSE(payload, ((struct spop_slice){ NULL, 0 }), SIGV4_OK); /* an empty body needs no bytes */
	REFUSE(time, -1, SIGV4_ETIME);
	REFUSE(time, INT64_C(253402300800), SIGV4_ETIME);
	REFUSE(time, INT64_MAX, SIGV4_ETIME);
	REFUSE(nheaders, SIGV4_MAX_HEADERS + 1, SIGV4_ELIMIT);
	r = bedrock_req();
	r.headers = NULL;
	expect(&r, &cr, SIGV4_EHEADER);

	/* Headers the module owns, or that would break the request line by line. */
	static const struct sigv4_header bad[] = {
		H("Host", "evil"), H("X-Amz-Date", "20000101T000000Z"), H("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
		H("X-Amz-Security-Token", "t"), H("Authorization", "x"), H("", "v"), H("bad name", "v"),
		H("bad:name", "v"), H("x-a", "v\r\nx-evil: 1"), H("x-a", "v\n"), H("x-a", "a\x7f"),
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = bedrock_req();
		r.headers = &bad[i];
		expect(&r, &cr, SIGV4_EHEADER);
	}
	static const struct sigv4_header fine = H("x-a", "tab\tand \x80\xff bytes");
	r = bedrock_req();
	r.headers = &fine;
	expect(&r, &cr, SIGV4_OK);

	r = bedrock_req();
#define REFUSE_CREDS(field, value, status) \
	do { c = cr; c.field = (value); expect(&r, &c, (status)); } while (0)
	REFUSE_CREDS(access_key_id, S(""), SIGV4_ECREDS);
	REFUSE_CREDS(access_key_id, S("AKIA/EXAMPLE"), SIGV4_ECREDS);
	REFUSE_CREDS(access_key_id, S("AKIA EXAMPLE"), SIGV4_ECREDS);
	REFUSE_CREDS(access_key_id, ((struct spop_slice){ (const uint8_t *)big, 129 }), SIGV4_ECREDS);
	REFUSE_CREDS(secret_key, S(""), SIGV4_ECREDS);
	REFUSE_CREDS(secret_key, ((struct spop_slice){ (const uint8_t *)big, SIGV4_SECRET_MAX + 1 }), SIGV4_ECREDS);
	REFUSE_CREDS(secret_key, ((struct spop_slice){ (const uint8_t *)big, SIGV4_SECRET_MAX }), SIGV4_OK);
	REFUSE_CREDS(session_token, S("tok en"), SIGV4_ECREDS);
	REFUSE_CREDS(session_token, S("tok\r\nx-evil: 1"), SIGV4_ECREDS);
	REFUSE_CREDS(session_token, ((struct spop_slice){ (const uint8_t *)big, SIGV4_TOKEN_MAX }), SIGV4_ETOOBIG);
	REFUSE_CREDS(session_token, ((struct spop_slice){ (const uint8_t *)big, SIGV4_TOKEN_MAX - 1 }), SIGV4_OK);
}

/* More segments, parameters or headers than the limits; an Authorization too long. */
static void limits(void **state)
{
	(void)state;
	struct sigv4_creds cr = { S("AKID"), S("secret"), S("") };
	char path[4 * (SIGV4_MAX_SEGMENTS + 1) + 1] = "", query[8 * (SIGV4_MAX_QUERY + 1) + 1] = "";
	struct sigv4_req r = bedrock_req();
	for (int i = 0; i < SIGV4_MAX_SEGMENTS; i++)
		strcat(path, "/s");
	r.path = S(path);
	expect(&r, &cr, SIGV4_OK);
	strcat(path, "/..");
	r.path = S(path);
	expect(&r, &cr, SIGV4_OK); /* ".." is not kept */
	strcat(path, "/s/s");
	r.path = S(path);
	expect(&r, &cr, SIGV4_ELIMIT);

	r = bedrock_req();
	for (int i = 0; i < SIGV4_MAX_QUERY; i++)
		strcat(query, "&a=1");
	r.query = S(query);
	expect(&r, &cr, SIGV4_OK);
	strcat(query, "&&&&");
	r.query = S(query);
	expect(&r, &cr, SIGV4_OK); /* empty pieces are no parameters */
	strcat(query, "&b");
	r.query = S(query);
	expect(&r, &cr, SIGV4_ELIMIT);

	/* 16 headers of 60-letter names: SignedHeaders alone is over 1,000 bytes. */
	static char names[SIGV4_MAX_HEADERS][61];
	struct sigv4_header h[SIGV4_MAX_HEADERS];
	for (int i = 0; i < SIGV4_MAX_HEADERS; i++) {
		memset(names[i], 'a' + i, 60);
		h[i] = (struct sigv4_header){ S(names[i]), S("v") };
	}
	r = bedrock_req();
	r.headers = h;
	r.nheaders = SIGV4_MAX_HEADERS;
	expect(&r, &cr, SIGV4_ETOOBIG);
	r.nheaders = 10;
	expect(&r, &cr, SIGV4_OK);

	/* sigv4_canonical: a buffer too small is refused, still NUL-terminated. */
	char creq[1024], small[40];
	r = bedrock_req();
	assert_int_equal(sigv4_canonical(&r, &cr, creq, sizeof(creq), NULL, 0), SIGV4_OK);
	memset(small, 'x', sizeof(small));
	assert_int_equal(sigv4_canonical(&r, &cr, small, sizeof(small), NULL, 0), SIGV4_ETOOBIG);
	assert_int_equal(strlen(small), 39);
	assert_memory_equal(small, creq, 39);
	assert_int_equal(sigv4_canonical(&r, &cr, NULL, 0, small, sizeof(small)), SIGV4_ETOOBIG);
	assert_int_equal(sigv4_canonical(&r, &cr, creq, 0, NULL, 0), SIGV4_ETOOBIG);
}

/* ---- property: no write past the outputs, whatever the lengths ---- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n) /* 0 .. n-1 */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

/* n random bytes from `alphabet` (NULL: any byte) in a heap block of exactly n
 * bytes, no NUL after: ASan sees any read past the slice. */
static struct spop_slice rnd_bytes(size_t n, const char *alphabet)
{
	uint8_t *p = malloc(n ? n : 1);
	assert_non_null(p);
	size_t k = alphabet ? strlen(alphabet) : 0;
	for (size_t i = 0; i < n; i++)
		p[i] = alphabet ? (uint8_t)alphabet[rnd((uint32_t)k)] : (uint8_t)rnd(256);
	return (struct spop_slice){ p, n };
}

#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#define SCOPE "abcdefghijklmnopqrstuvwxyz0123456789-"
#define TOKEN ALNUM "+/="

static void free_slice(struct spop_slice s)
{
	free((void *)s.ptr);
}

/* Length of the Authorization value these inputs must give. */
static size_t auth_len(size_t akid, size_t region, size_t service, bool token, const struct sigv4_header *h,
                       size_t nh)
{
	size_t names = strlen("host;x-amz-date;x-amz-content-sha256") + (token ? strlen(";x-amz-security-token") : 0);
	for (size_t i = 0; i < nh; i++)
		names += 1 + h[i].name.len;
	return strlen("AWS4-HMAC-SHA256 Credential=") + akid + strlen("/20150830/") + region + 1 + service +
	       strlen("/aws4_request, SignedHeaders=") + names + strlen(", Signature=") + 64;
}

static void no_overflow(void **state)
{
	(void)state;
	int seen[SIGV4_ECRYPTO + 1] = { 0 }, auth_too_big = 0;
	for (int iter = 0; iter < 3000; iter++) {
		/* Near the limits most of the time, anywhere now and then. */
		size_t akid = 1 + rnd(iter % 4 ? 140 : 20), region = 1 + rnd(70), service = 1 + rnd(70);
		size_t token = rnd(3) == 0 ? 0 : (iter % 2 ? SIGV4_TOKEN_MAX - 3 + rnd(6) : rnd(2000));
		size_t nh = rnd(SIGV4_MAX_HEADERS + 2);
		struct sigv4_header h[SIGV4_MAX_HEADERS + 2];
		for (size_t i = 0; i < nh; i++) {
			/* "h<i>-..." keeps the names apart, so each is one entry of SignedHeaders. */
			size_t len = 4 + rnd(80);
			struct spop_slice name = rnd_bytes(len, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-");
			((uint8_t *)name.ptr)[0] = 'h';
			((uint8_t *)name.ptr)[1] = (uint8_t)('a' + i);
			((uint8_t *)name.ptr)[2] = '-';
			h[i] = (struct sigv4_header){ name, rnd_bytes(rnd(100), " \tabcdefgh,;\"") };
		}
		struct spop_slice segs = rnd_bytes(1 + rnd(300), "/./abc%~"), payload = rnd_bytes(rnd(5000), NULL);
		((uint8_t *)segs.ptr)[0] = '/';
		struct sigv4_req req = {
			.method = S("POST"), .path = segs, .query = rnd_bytes(rnd(200), "ab=&%2F+ ~"),
			.host = rnd_bytes(1 + rnd(255), ALNUM ".-:"), .headers = h, .nheaders = nh, .payload = payload,
			.region = rnd_bytes(region, SCOPE), .service = rnd_bytes(service, SCOPE), .time = SUITE_TIME,
		};
		struct sigv4_creds cr = { rnd_bytes(akid, ALNUM), rnd_bytes(1 + rnd(SIGV4_SECRET_MAX), NULL),
			                  rnd_bytes(token, TOKEN) };

		size_t want_len = auth_len(akid, region, service, token > 0, h, nh > SIGV4_MAX_HEADERS ? 0 : nh);
		enum sigv4_status want = SIGV4_OK;
		if (region > 64 || service > 64)
			want = SIGV4_ESCOPE;
		else if (akid > 128)
			want = SIGV4_ECREDS;
		else if (token >= SIGV4_TOKEN_MAX)
			want = SIGV4_ETOOBIG;
		/* (the path and query may hit their own limits) */

		struct sigv4_out *out = malloc(sizeof(*out)); /* exactly: ASan sees a write past it */
		assert_non_null(out);
		memset(out, 0xa5, sizeof(*out));
		enum sigv4_status st = sigv4_sign(&req, &cr, out);
		if (st == SIGV4_ELIMIT && want == SIGV4_OK)
			want = SIGV4_ELIMIT; /* checked last: every other input was fine */
		if (want == SIGV4_OK && nh > SIGV4_MAX_HEADERS)
			want = SIGV4_ELIMIT;
		if (want == SIGV4_OK && want_len >= SIGV4_AUTH_MAX)
			want = SIGV4_ETOOBIG;
		assert_int_equal(st, want);
		seen[st]++;
		auth_too_big += st == SIGV4_ETOOBIG && token < SIGV4_TOKEN_MAX;
		if (st != SIGV4_OK) {
			assert_true(all_zero(out, sizeof(*out)));
		} else {
			assert_int_equal(strlen(out->amz_date), 16);
			assert_int_equal(strlen(out->content_sha256), 64);
			assert_int_equal(strlen(out->security_token), token);
			assert_memory_equal(out->security_token, cr.session_token.ptr, token);
			assert_int_equal(strlen(out->authorization), want_len);
			assert_memory_equal(out->authorization + strlen("AWS4-HMAC-SHA256 Credential="),
			                    cr.access_key_id.ptr, akid);
			/* Nothing written past a value's NUL. */
			for (size_t i = want_len + 1; i < sizeof(out->authorization); i++)
				assert_int_equal((uint8_t)out->authorization[i], 0xa5);
			for (size_t i = token + 1; i < sizeof(out->security_token); i++)
				assert_int_equal((uint8_t)out->security_token[i], 0xa5);
		}
		free(out);

		/* sigv4_canonical into buffers of exactly cap bytes, around the needed length. */
		if (st == SIGV4_OK) {
			char full[16384], sts[256];
			assert_int_equal(sigv4_canonical(&req, &cr, full, sizeof(full), sts, sizeof(sts)), SIGV4_OK);
			size_t need = strlen(full), cap = need + 3 - rnd(6);
			char *buf = malloc(cap ? cap : 1);
			assert_non_null(buf);
			st = sigv4_canonical(&req, &cr, buf, cap, NULL, 0);
			assert_int_equal(st, cap > need ? SIGV4_OK : SIGV4_ETOOBIG);
			if (cap > 0)
				assert_true(strlen(buf) < cap);
			free(buf);
			need = strlen(sts);
			cap = need + 3 - rnd(6);
			buf = malloc(cap);
			assert_non_null(buf);
			assert_int_equal(sigv4_canonical(&req, &cr, NULL, 0, buf, cap), cap > need ? SIGV4_OK : SIGV4_ETOOBIG);
			free(buf);
		}

		for (size_t i = 0; i < nh; i++) {
			free_slice(h[i].name);
			free_slice(h[i].value);
		}
		free_slice(req.path);
		free_slice(req.query);
		free_slice(req.host);
		free_slice(req.payload);
		free_slice(req.region);
		free_slice(req.service);
		free_slice(cr.access_key_id);
		free_slice(cr.secret_key);
		free_slice(cr.session_token);
	}
	/* Each outcome came up often enough to mean something. */
	print_message("# signed %d, Authorization too long %d, token too long %d, limits %d, bad scope %d, bad key id %d\n",
	              seen[SIGV4_OK], auth_too_big, seen[SIGV4_ETOOBIG] - auth_too_big, seen[SIGV4_ELIMIT],
	              seen[SIGV4_ESCOPE], seen[SIGV4_ECREDS]);
	assert_true(seen[SIGV4_OK] > 500 && auth_too_big > 20 && seen[SIGV4_ETOOBIG] - auth_too_big > 100 &&
	            seen[SIGV4_ELIMIT] > 50);
}

/* Authorization lengths of exactly SIGV4_AUTH_MAX - 2 .. SIGV4_AUTH_MAX + 1. */
static void auth_boundary(void **state)
{
	(void)state;
	static char names[8][101], akid[129];
	struct sigv4_header h[8];
	for (int i = 0; i < 8; i++) {
		memset(names[i], 'a' + i, 100);
		h[i] = (struct sigv4_header){ S(names[i]), S("v") };
	}
	struct sigv4_req req = bedrock_req();
	req.headers = h;
	req.nheaders = 8;
	req.time = SUITE_TIME;
	size_t base = auth_len(0, 9, 7, false, h, 8); /* "us-east-1", "bedrock" */
	for (size_t len = SIGV4_AUTH_MAX - 2; len <= SIGV4_AUTH_MAX + 1; len++) {
		memset(akid, 'A', sizeof(akid));
		struct sigv4_creds cr = { { (const uint8_t *)akid, len - base }, S("secret"), S("") };
		assert_true(cr.access_key_id.len >= 1 && cr.access_key_id.len <= 128);
		struct sigv4_out *out = malloc(sizeof(*out));
		assert_non_null(out);
		enum sigv4_status st = sigv4_sign(&req, &cr, out);
		assert_int_equal(st, len < SIGV4_AUTH_MAX ? SIGV4_OK : SIGV4_ETOOBIG);
		if (st == SIGV4_OK)
			assert_int_equal(strlen(out->authorization), len);
		free(out);
	}
}

int main(void)
{
	static struct CMUnitTest tests[NVECS + 10];
	size_t n = 0;
	for (size_t i = 0; i < NVECS; i++)
		tests[n++] = (struct CMUnitTest){ .name = VECS[i].name, .test_func = suite_vector,
			                          .initial_state = (void *)&VECS[i] };
	const struct CMUnitTest more[] = {
		cmocka_unit_test(iam_example),      cmocka_unit_test(bedrock_converse),
		cmocka_unit_test(canonical_paths),  cmocka_unit_test(canonical_queries),
		cmocka_unit_test(canonical_headers), cmocka_unit_test(amz_dates),
		cmocka_unit_test(refusals),         cmocka_unit_test(limits),
		cmocka_unit_test(no_overflow),      cmocka_unit_test(auth_boundary),
	};
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		tests[n++] = more[i];
	return _cmocka_run_group_tests("sigv4", tests, n, NULL, NULL);
}
